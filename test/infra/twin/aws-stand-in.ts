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

/**
 * A loopback stand-in for the two AWS JSON APIs the functions call besides S3: Secrets Manager's
 * GetSecretValue and Step Functions' StartExecution. The bundled SDK reaches it through the SDK's
 * own AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL_SFN; it answers only the exact secret and
 * state machine the template names, so a wrong ARN in the environment fails the test.
 */
export class AwsStandIn {
  readonly secretReads: string[] = [];
  readonly executions: StartedExecution[] = [];
  private server?: Server;
  endpoint = '';

  constructor(
    readonly secret: StandInSecret,
    readonly stateMachineArn: string,
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void body(req).then((text) => {
        const target = String(req.headers['x-amz-target'] ?? '');
        const request = JSON.parse(text || '{}') as Record<string, unknown>;
        const reply = (status: number, payload: unknown) => {
          res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(JSON.stringify(payload));
        };
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
        if (target === 'AWSStepFunctions.StartExecution') {
          if (request.stateMachineArn !== this.stateMachineArn) {
            return reply(400, {
              __type: 'StateMachineDoesNotExist',
              message: 'State Machine Does Not Exist',
            });
          }
          this.executions.push({
            stateMachineArn: String(request.stateMachineArn),
            input: JSON.parse(String(request.input ?? '{}')),
          });
          return reply(200, {
            executionArn: `${this.stateMachineArn.replace(':stateMachine:', ':execution:')}:twin-${this.executions.length}`,
            startDate: Date.now() / 1000,
          });
        }
        return reply(400, {
          __type: 'UnknownOperationException',
          message: `not served by the stand-in: ${target}`,
        });
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const address = this.server.address() as { port: number };
    this.endpoint = `http://127.0.0.1:${address.port}`;
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
