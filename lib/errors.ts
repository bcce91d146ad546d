/** Errors raised by the actor runtime. Each has a stable `code`. */
export class SynodError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SynodError';
  }
}

export class AskTimeoutError extends SynodError {
  constructor(to: string, ms: number) {
    super('SYNOD_ERR_ASK_TIMEOUT', `no reply from ${to} within ${ms} ms`);
    this.name = 'AskTimeoutError';
  }
}

export class DeliveryError extends SynodError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = 'DeliveryError';
  }
}
