import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { tempDir } from '../../support/temp';
import type { AwsStandIn, TaskReport } from './aws-stand-in';
import type { TaskError } from './state-machine';

type Json = Record<string, unknown>;
const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const CREDS = { AccessKeyId: 'S3RVER', SecretAccessKey: 'S3RVER', Token: 'twin-session-token' };

/** The layer version ARN the twin gives a template's LayerVersion resource. */
export const layerArn = (logicalId: string) => `arn:aws:lambda:${REGION}:${ACCOUNT}:layer:${logicalId}:1`;

/** A CloudFormation value of the task definition made local: Refs by prefix, layers as ARNs, Fn::Join. */
function resolveValue(value: unknown, refs: Record<string, string>, layers: Set<string>): string {
  if (typeof value === 'string') return value;
  const o = value as Json;
  if (o && 'Ref' in o) {
    const ref = String(o.Ref);
    if (ref === 'AWS::Region') return REGION;
    if (layers.has(ref)) return layerArn(ref);
    const local = Object.entries(refs).find(([prefix]) => ref.startsWith(prefix))?.[1];
    if (local === undefined) throw new Error(`no local stand-in for Ref ${ref}`);
    return local;
  }
  if (o && 'Fn::Join' in o) {
    const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => resolveValue(p, refs, layers)).join(sep);
  }
  throw new Error(`no local stand-in for ${JSON.stringify(value)}`);
}

export interface TaskDefinitionTwin {
  readonly command: string[];
  readonly environment: Record<string, string>;
  readonly cpu: string;
  readonly memory: string;
  /** Asset folder of each LayerVersion in the template, by logical id. */
  readonly layerDirs: Map<string, string>;
}

/** The template's one task definition, its environment resolved as ECS would pass it. */
export function taskDefinitionTwin(
  template: { Resources: Record<string, Json> },
  outdir: string,
  refs: Record<string, string>,
): TaskDefinitionTwin {
  const entries = Object.entries(template.Resources);
  const layerDirs = new Map(
    entries
      .filter(([, r]) => r.Type === 'AWS::Lambda::LayerVersion')
      .map(([id, r]) => {
        const key = String(((r.Properties as Json).Content as Json).S3Key);
        return [id, join(outdir, `asset.${key.replace(/\.zip$/, '')}`)] as const;
      }),
  );
  const task = entries.filter(([, r]) => r.Type === 'AWS::ECS::TaskDefinition');
  if (task.length !== 1) throw new Error(`expected one task definition, found ${task.length}`);
  const props = (task[0] as [string, Json])[1].Properties as Json;
  const container = (props.ContainerDefinitions as Json[])[0] as Json;
  const environment: Record<string, string> = {};
  for (const e of container.Environment as { Name: string; Value: unknown }[]) {
    environment[e.Name] = resolveValue(e.Value, refs, new Set(layerDirs.keys()));
  }
  return {
    command: container.Command as string[],
    environment,
    cpu: String(props.Cpu),
    memory: String(props.Memory),
    layerDirs,
  };
}

function zipDir(dir: string): Buffer {
  const out = join(tempDir('dump-bag-layer-zip-'), 'layer.zip');
  // -y keeps symlinks (the stand-in pg layer links the system's pg_dump), -X leaves out extra fields.
  execFileSync('zip', ['-q', '-r', '-y', '-X', out, '.'], { cwd: dir });
  const bytes = readFileSync(out);
  rmSync(out, { force: true });
  return bytes;
}

/** SigV4 with the task's credentials, as the bootstrap signs; only S3 signs a payload-hash header. */
function taskSigner(service: string): SignatureV4 {
  return new SignatureV4({
    service,
    region: REGION,
    credentials: {
      accessKeyId: CREDS.AccessKeyId,
      secretAccessKey: CREDS.SecretAccessKey,
      sessionToken: CREDS.Token,
    },
    sha256: Sha256,
    uriEscapePath: true,
    applyChecksum: false,
  });
}

/** An x-amz-date (20260102T030405Z) as a Date. */
function amzDate(d: string): Date {
  return new Date(
    `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 11)}:${d.slice(11, 13)}:${d.slice(13, 15)}Z`,
  );
}

export interface TaskRun {
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly env: Record<string, string>;
}

/**
 * ECS for the twin: runs the container's own command (`node -e <bootstrap>`) as a process with the
 * task definition's environment and the state machine's overrides, the ECS credentials endpoint and
 * Lambda's GetLayerVersionByArn served by the stand-in (SigV4 checked), and answers the task state
 * with what the process sent for its token; no report at all is a heartbeat timeout.
 */
export class FargateTwin {
  readonly runs: TaskRun[] = [];
  readonly layerRequests: string[] = [];
  /** A layer whose recorded SHA-256 the stand-in misstates, to see the task refuse it. */
  corruptLayer?: string;
  /** A layer whose download answers 404 (deleted, or its URL expired). */
  missingLayer?: string;
  private readonly zips = new Map<string, Buffer>();

  constructor(
    readonly standIn: AwsStandIn,
    readonly task: TaskDefinitionTwin,
    /** argv before `-e <bootstrap>`: this machine's node, or node for arm64 under qemu. */
    readonly node: readonly string[] = [process.execPath],
  ) {
    const signer = taskSigner('lambda');
    standIn.routes.set('/creds', () => ({
      status: 200,
      body: { ...CREDS, Expiration: new Date(Date.now() + 3600_000).toISOString() },
    }));
    standIn.routes.set('/2018-10-31/layers', (req) => {
      const url = new URL(req.url ?? '/', standIn.endpoint);
      const arn = url.searchParams.get('Arn') ?? '';
      this.layerRequests.push(arn);
      const logicalId = [...task.layerDirs.keys()].find((id) => layerArn(id) === arn);
      if (!logicalId) return { status: 404, body: { __type: 'ResourceNotFoundException', message: arn } };
      const d = String(req.headers['x-amz-date']);
      const signingDate = amzDate(d);
      const request = {
        method: 'GET',
        protocol: 'http:',
        hostname: url.hostname,
        port: Number(url.port),
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: {
          host: url.host,
          'x-amz-date': d,
          'x-amz-security-token': String(req.headers['x-amz-security-token']),
        },
      };
      this.signatures.push(
        signer
          .sign(request, { signingDate })
          .then((signed) => signed.headers.authorization === req.headers.authorization),
      );
      const zip = this.zipOf(logicalId);
      const sha = createHash('sha256').update(logicalId === this.corruptLayer ? 'not the layer' : zip);
      return {
        status: 200,
        body: {
          LayerVersionArn: arn,
          Content: {
            Location: `${standIn.endpoint}/layer-zip/${logicalId}`,
            CodeSha256: sha.digest('base64'),
            CodeSize: zip.length,
          },
        },
      };
    });
    for (const id of task.layerDirs.keys()) {
      standIn.routes.set(`/layer-zip/${id}`, () =>
        id === this.missingLayer
          ? { status: 404, body: { Code: 'NoSuchKey' } }
          : { status: 200, body: this.zipOf(id) },
      );
    }
  }

  /** Whether each signed GetLayerVersionByArn request carried the SigV4 signature of the task's credentials. */
  readonly signatures: Promise<boolean>[] = [];

  /** Whether a report (SendTaskFailure from the bootstrap) carried the SigV4 signature of the task's credentials. */
  async signedByTask(report: TaskReport): Promise<boolean> {
    const { headers, body } = report.request;
    const url = new URL('/', this.standIn.endpoint);
    const d = String(headers['x-amz-date']);
    const signed = await taskSigner('states').sign(
      {
        method: 'POST',
        protocol: 'http:',
        hostname: url.hostname,
        port: Number(url.port),
        path: '/',
        headers: {
          host: url.host,
          'content-type': String(headers['content-type']),
          'x-amz-target': String(headers['x-amz-target']),
          'x-amz-date': d,
          'x-amz-security-token': String(headers['x-amz-security-token']),
        },
        body,
      },
      { signingDate: amzDate(d) },
    );
    return signed.headers.authorization === headers.authorization;
  }

  private zipOf(logicalId: string): Buffer {
    let zip = this.zips.get(logicalId);
    if (!zip) {
      zip = zipDir(this.task.layerDirs.get(logicalId) as string);
      this.zips.set(logicalId, zip);
    }
    return zip;
  }

  /** The state machine's ecs:runTask.waitForTaskToken. */
  async runTask(
    args: Json,
    taskToken: string,
    /** Added last; a function gets the folder that stands for the task's /opt. */
    extraEnv: Record<string, string> | ((optDir: string) => Record<string, string>) = {},
  ) {
    const overrides = ((args.Overrides as Json).ContainerOverrides as Json[])[0] as Json;
    const optDir = tempDir('dump-bag-task-opt-');
    const env: Record<string, string> = {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      HOME: '/root',
      // What ECS adds: the task's credentials endpoint (here the stand-in's), and nothing else of this machine.
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${this.standIn.endpoint}/creds`,
      AWS_ENDPOINT_URL_LAMBDA: this.standIn.endpoint,
      ...Object.fromEntries(
        Object.entries(this.task.environment).map(([k, v]) => [
          k,
          v.startsWith('/opt/') ? join(optDir, v.slice('/opt/'.length)) : v,
        ]),
      ),
      ...Object.fromEntries(
        (overrides.Environment as { Name: string; Value: string }[]).map((e) => [e.Name, e.Value]),
      ),
      DUMP_BAG_OPT_DIR: optDir,
      ...(typeof extraEnv === 'function' ? extraEnv(optDir) : extraEnv),
    };
    this.standIn.openTokens.add(taskToken);
    const command = this.task.command;
    if (command[0] !== 'node' || command[1] !== '-e')
      throw new Error(`unexpected command ${command.join(' ')}`);
    const run = await new Promise<TaskRun>((resolve, reject) => {
      const [bin, ...pre] = this.node;
      const child = spawn(bin as string, [...pre, '-e', command[2] as string], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString('utf8');
      });
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString('utf8');
      });
      child.on('error', reject);
      child.on('close', (exitCode) => resolve({ exitCode, stdout, stderr, env }));
    });
    this.runs.push(run);
    rmSync(optDir, { recursive: true, force: true });
    this.standIn.openTokens.delete(taskToken);
    const report = this.standIn.taskReports.find(
      (r) => r.taskToken === taskToken && r.action !== 'SendTaskHeartbeat',
    );
    if (report?.action === 'SendTaskSuccess') return { ok: true as const, payload: report.output };
    const failure: TaskError = report
      ? { ok: false, error: report.error ?? 'Error', cause: report.cause ?? '' }
      : {
          ok: false,
          error: 'States.HeartbeatTimeout',
          cause: `the task exited (${run.exitCode}) without reporting`,
        };
    return failure;
  }
}
