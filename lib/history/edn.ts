/**
 * A small EDN reader, enough for Jepsen histories: maps, vectors, lists, sets, keywords,
 * symbols, strings, characters, numbers, nil, true/false, comments and `#_` discards.
 * Keywords and symbols become strings without the leading colon; maps become plain objects
 * whose keys are the printed keys (`:process` → `process`); sets become arrays.
 */

export class EdnError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

export type EdnValue =
  | null
  | boolean
  | number
  | string
  | EdnValue[]
  | { [key: string]: EdnValue }
  | EdnTagged;

export interface EdnTagged {
  tag: string;
  value: EdnValue;
}

const DELIM = new Set(['{', '}', '[', ']', '(', ')', '"', ';']);

function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === ',' || c === '\f';
}

/** Reads every top-level value in `text`. */
export function readAllEdn(text: string): EdnValue[] {
  const r = new Reader(text);
  const out: EdnValue[] = [];
  for (;;) {
    r.skip();
    if (r.pos >= text.length) return out;
    out.push(r.value());
  }
}

/** Reads exactly one value (trailing whitespace allowed). */
export function readEdn(text: string): EdnValue {
  const r = new Reader(text);
  r.skip();
  if (r.pos >= text.length) throw new EdnError('empty input', 0);
  const v = r.value();
  r.skip();
  if (r.pos < text.length) throw new EdnError(`unexpected "${text[r.pos]}" after value`, r.pos);
  return v;
}

class Reader {
  pos = 0;
  constructor(private readonly s: string) {}

  skip(): void {
    const s = this.s;
    while (this.pos < s.length) {
      const c = s[this.pos] as string;
      if (isSpace(c)) this.pos++;
      else if (c === ';') {
        while (this.pos < s.length && s[this.pos] !== '\n') this.pos++;
      } else if (c === '#' && s[this.pos + 1] === '_') {
        this.pos += 2;
        this.skip();
        this.value();
      } else return;
    }
  }

  fail(msg: string): never {
    throw new EdnError(msg, this.pos);
  }

  value(): EdnValue {
    this.skip();
    const s = this.s;
    if (this.pos >= s.length) this.fail('unexpected end of input');
    const c = s[this.pos] as string;
    switch (c) {
      case '{':
        return this.map();
      case '[':
        this.pos++;
        return this.seq(']');
      case '(':
        this.pos++;
        return this.seq(')');
      case '"':
        return this.string();
      case '#':
        if (s[this.pos + 1] === '{') {
          this.pos += 2;
          return this.seq('}');
        }
        this.pos++;
        return { tag: this.token(), value: this.value() };
      case '\\': {
        this.pos++;
        const t = this.token();
        const named: Record<string, string> = {
          newline: '\n',
          space: ' ',
          tab: '\t',
          return: '\r',
        };
        return named[t] ?? t;
      }
      case '}':
      case ']':
      case ')':
        this.fail(`unexpected "${c}"`);
    }
    return this.atom();
  }

  private token(): string {
    const s = this.s;
    const start = this.pos;
    while (this.pos < s.length) {
      const c = s[this.pos] as string;
      if (isSpace(c) || DELIM.has(c)) break;
      this.pos++;
    }
    if (this.pos === start) this.fail('expected a token');
    return s.slice(start, this.pos);
  }

  private atom(): EdnValue {
    const start = this.pos;
    const t = this.token();
    if (t === 'nil') return null;
    if (t === 'true') return true;
    if (t === 'false') return false;
    if (t.startsWith(':')) return t.slice(1);
    if (/^[+-]?\d/.test(t)) {
      const body = t.replace(/[NM]$/, '');
      if (/^[+-]?\d+\/\d+$/.test(body)) {
        const [a, b] = body.split('/');
        return Number(a) / Number(b);
      }
      const n = Number(body);
      if (Number.isNaN(n)) {
        this.pos = start;
        this.fail(`bad number "${t}"`);
      }
      return n;
    }
    return t;
  }

  private string(): string {
    const s = this.s;
    this.pos++;
    let out = '';
    for (;;) {
      if (this.pos >= s.length) this.fail('unterminated string');
      const c = s[this.pos++] as string;
      if (c === '"') return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = s[this.pos++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case 'u': {
          const hex = s.slice(this.pos, this.pos + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('bad \\u escape');
          out += String.fromCharCode(Number.parseInt(hex, 16));
          this.pos += 4;
          break;
        }
        default:
          this.fail(`bad escape "\\${e ?? ''}"`);
      }
    }
  }

  private seq(close: string): EdnValue[] {
    const out: EdnValue[] = [];
    for (;;) {
      this.skip();
      if (this.pos >= this.s.length) this.fail(`missing "${close}"`);
      if (this.s[this.pos] === close) {
        this.pos++;
        return out;
      }
      out.push(this.value());
    }
  }

  private map(): { [key: string]: EdnValue } {
    this.pos++;
    const out: { [key: string]: EdnValue } = {};
    for (;;) {
      this.skip();
      if (this.pos >= this.s.length) this.fail('missing "}"');
      if (this.s[this.pos] === '}') {
        this.pos++;
        return out;
      }
      const k = this.value();
      this.skip();
      if (this.s[this.pos] === '}') this.fail('map has a key without a value');
      const v = this.value();
      out[typeof k === 'string' ? k : JSON.stringify(k)] = v;
    }
  }
}
