/** The `synod` command. Sub-commands are added by the issues that build them. */
export async function main(argv: string[]): Promise<number> {
  const [cmd] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help') {
    console.log('usage: synod <command> [options]\n\ncommands: help');
    return 0;
  }
  console.error(`synod: unknown command "${cmd}" (try: synod help)`);
  return 2;
}
