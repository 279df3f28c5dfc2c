import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';

/** The Secrets Manager secret the stand-in holds: the RDS layout the functions read. */
export interface StandInSecret {
  readonly arn: string;
  value: Record<string, unknown>;
}

export interface StartedExecution {
  readonly stateMachineArn: string;
  readonly input: unknown;
}

/** What a task sent back for its token: SendTaskSuccess, SendTaskFailure or SendTaskHeartbeat. */
export interface TaskReport {
  readonly action: 'SendTaskSuccess' | 'SendTaskFailure' | 'SendTaskHeartbeat';
  readonly taskToken: string;
  readonly output?: unknown;
  readonly error?: string;
  readonly cause?: string;
  /** The request as sent, for checking its signature. */
  readonly request: { readonly headers: IncomingMessage['headers']; readonly body: string };
}

/** A test's own answer to one request of the stand-in: the status and the JSON body. */
export type StandInRoute = (req: IncomingMessage, body: string) => { status: number; body: unknown };

/**
 * A loopback stand-in for the two AWS JSON APIs the functions call besides S3: Secrets Manager's
 * GetSecretValue and Step Functions' StartExecution and ListExecutions. The bundled SDK reaches it through the SDK's
 * own AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL_SFN; it answers only the exact secret and
 * state machine the template names, so a wrong ARN in the environment fails the test.
 */
export class AwsStandIn {
  readonly secretReads: string[] = [];
  readonly executions: StartedExecution[] = [];
  /** KMS: calls by operation, to prove who asked for what. */
  readonly kmsCalls: { operation: string; keyId: string }[] = [];
  /** The stand-in's own ECC_NIST_P256 signing key (KMS keeps the private half; so does the stand-in). */
  readonly kmsKey: { readonly privateKey: KeyObject; readonly publicKey: KeyObject } = generateKeyPairSync(
    'ec',
    { namedCurve: 'P-256' },
  );
  /** Each started execution's name and status, RUNNING until finishExecutions(), for ListExecutions. */
  readonly runs: { name: string; executionArn: string; startDate: number; status: string }[] = [];
  /** The local recorder in place of Step Functions' task-token API. */
  readonly taskReports: TaskReport[] = [];
  /** Tokens a waiting task state would accept; any other is refused as Step Functions does. */
  readonly openTokens = new Set<string>();
  /** Extra handlers by x-amz-target or by path (the Lambda API is REST), for a test's own stand-ins. */
  readonly routes = new Map<string, StandInRoute>();
  private server?: Server;
  endpoint = '';

  constructor(
    readonly secret: StandInSecret,
    readonly stateMachineArn: string,
    /** The KMS key id the template's DUMP_BAG_SIGNING_KEY_ID resolves to. */
    readonly kmsKeyId = '1234abcd-12ab-34cd-56ef-1234567890ab',
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      // biome-ignore lint/complexity/noExcessiveCognitiveComplexity: a stand-in for several AWS JSON APIs, one flat case per action the bundles call
      void body(req).then((text) => {
        const target = String(req.headers['x-amz-target'] ?? '');
        const request = JSON.parse(text || '{}') as Record<string, unknown>;
        const reply = (status: number, payload: unknown) => {
          res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(JSON.stringify(payload));
        };
        const route =
          this.routes.get(target) ?? this.routes.get(new URL(req.url ?? '/', 'http://x').pathname);
        if (route) {
          const answer = route(req, text);
          if (Buffer.isBuffer(answer.body)) {
            res.writeHead(answer.status, { 'content-type': 'application/octet-stream' });
            return res.end(answer.body);
          }
          return reply(answer.status, answer.body);
        }
        const action = target.replace(/^AWSStepFunctions\./, '');
        if (action === 'SendTaskSuccess' || action === 'SendTaskFailure' || action === 'SendTaskHeartbeat') {
          const taskToken = String(request.taskToken);
          if (!this.openTokens.has(taskToken)) {
            return reply(400, { __type: 'TaskTimedOut', message: 'Task Timed Out' });
          }
          if (action !== 'SendTaskHeartbeat') this.openTokens.delete(taskToken);
          this.taskReports.push({
            action,
            taskToken,
            output: request.output === undefined ? undefined : JSON.parse(String(request.output)),
            error: request.error === undefined ? undefined : String(request.error),
            cause: request.cause === undefined ? undefined : String(request.cause),
            request: { headers: req.headers, body: text },
          });
          return reply(200, {});
        }
        if (target === 'secretsmanager.GetSecretValue') {
          this.secretReads.push(String(request.SecretId));
          if (request.SecretId !== this.secret.arn) {
            return reply(400, {
              __type: 'ResourceNotFoundException',
              message: "Secrets Manager can't find the specified secret.",
            });
          }
          return reply(200, {
            ARN: this.secret.arn,
            Name: 'dump-bag-twin',
            VersionId: 'twin-version',
            SecretString: JSON.stringify(this.secret.value),
            CreatedDate: Date.now() / 1000,
          });
        }
        if (target === 'AWSStepFunctions.ListExecutions' || target === 'AWSStepFunctions.StartExecution') {
          if (request.stateMachineArn !== this.stateMachineArn) {
            return reply(400, {
              __type: 'StateMachineDoesNotExist',
              message: 'State Machine Does Not Exist',
            });
          }
        }
        if (target === 'AWSStepFunctions.ListExecutions') {
          const executions = this.runs
            .filter((r) => request.statusFilter === undefined || r.status === request.statusFilter)
            .map((r) => ({ ...r, stateMachineArn: this.stateMachineArn }));
          return reply(200, { executions });
        }
        if (target === 'AWSStepFunctions.StartExecution') {
          const name = String(request.name ?? `twin-${this.executions.length + 1}`);
          // A name runs once per state machine, as in Step Functions.
          if (this.runs.some((r) => r.name === name)) {
            return reply(400, {
              __type: 'ExecutionAlreadyExists',
              message: `Execution Already Exists: '${name}'`,
            });
          }
          this.executions.push({
            stateMachineArn: String(request.stateMachineArn),
            input: JSON.parse(String(request.input ?? '{}')),
          });
          const run = {
            name,
            executionArn: `${this.stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`,
            startDate: Date.now() / 1000,
            status: 'RUNNING',
          };
          this.runs.push(run);
          return reply(200, { executionArn: run.executionArn, startDate: run.startDate });
        }
        if (target === 'TrentService.Sign' || target === 'TrentService.GetPublicKey') {
          return this.kms(target.slice('TrentService.'.length), request, reply);
        }
        return reply(400, {
          __type: 'UnknownOperationException',
          message: `not served by the stand-in: ${target}`,
        });
      });
    });
    // AWS endpoints keep an idle connection about a minute; Node's 5 s default closes it under a client
    // slowed by emulation, which then reuses the closed socket ("fetch failed").
    this.server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const address = this.server.address() as { port: number };
    this.endpoint = `http://127.0.0.1:${address.port}`;
  }

  /** KMS's Sign (RAW messages, ECDSA_SHA_256, DER signature) and GetPublicKey (SPKI DER), for this one key. */
  private kms(
    operation: string,
    request: Record<string, unknown>,
    reply: (status: number, payload: unknown) => void,
  ): unknown {
    const keyId = String(request.KeyId);
    this.kmsCalls.push({ operation, keyId });
    if (keyId !== this.kmsKeyId) {
      return reply(400, { __type: 'NotFoundException', message: `Key '${keyId}' does not exist` });
    }
    const arn = `arn:aws:kms:us-east-1:123456789012:key/${this.kmsKeyId}`;
    if (operation === 'GetPublicKey') {
      return reply(200, {
        KeyId: arn,
        KeySpec: 'ECC_NIST_P256',
        KeyUsage: 'SIGN_VERIFY',
        SigningAlgorithms: ['ECDSA_SHA_256'],
        PublicKey: this.kmsKey.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
      });
    }
    const message = Buffer.from(String(request.Message ?? ''), 'base64');
    if (
      request.SigningAlgorithm !== 'ECDSA_SHA_256' ||
      request.MessageType !== 'RAW' ||
      message.length > 4096
    ) {
      // DIGEST needs a pre-hashed ECDSA that node:crypto does not offer; the signer sends RAW up to 4096 bytes.
      return reply(400, {
        __type: 'ValidationException',
        message: 'the stand-in signs RAW messages of ≤ 4096 bytes with ECDSA_SHA_256',
      });
    }
    return reply(200, {
      KeyId: arn,
      SigningAlgorithm: 'ECDSA_SHA_256',
      Signature: sign('sha256', message, { key: this.kmsKey.privateKey, dsaEncoding: 'der' }).toString(
        'base64',
      ),
    });
  }

  /** The started executions end, as they would once the twin ran them. */
  finishExecutions(): void {
    for (const run of this.runs) run.status = 'SUCCEEDED';
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
