import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as openpgp from 'openpgp';
import { DumpBagStack, type DumpBagStackProps } from '../../infra/dump-bag-stack';
import { tempDir } from '../support/temp';

/** cdk.json's context (feature flags and defaults), so tests build what `npx cdk synth` builds. */
export function cdkJsonContext(): Record<string, unknown> {
  const file = new URL('../../cdk.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { context: Record<string, unknown> }).context;
}

export interface TestKey {
  readonly folder: string;
  readonly publicKey: string;
  readonly privateKey: string;
  readonly fingerprint: string;
}

/** A folder holding one fresh public key, as `keys.folder` takes it. */
export async function keyFolder(): Promise<TestKey> {
  const pair = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name: 'Infra Test', email: 'infra@example.com' }],
    format: 'armored',
  });
  const folder = tempDir('dump-bag-infra-keys-');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'infra.asc'), pair.publicKey);
  const key = await openpgp.readKey({ armoredKey: pair.publicKey });
  return {
    folder,
    publicKey: pair.publicKey,
    privateKey: pair.privateKey,
    fingerprint: key.getFingerprint().toUpperCase(),
  };
}

/** Props that synthesize: the given keys folder, everything else at its default. */
export function baseProps(keys: TestKey, overrides: Partial<DumpBagStackProps> = {}): DumpBagStackProps {
  return { keys: { folder: keys.folder }, ...overrides };
}

/**
 * The stack in an App of its own, with bundling skipped: assertions read the template, and
 * bundling (esbuild, the pg_dump layer) is the twin test's business.
 */
export function buildStack(props: DumpBagStackProps, context: Record<string, unknown> = {}): DumpBagStack {
  const app = new App({
    context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [], ...context },
  });
  return new DumpBagStack(app, 'DumpBagTest', props);
}

export function templateOf(props: DumpBagStackProps): Template {
  return Template.fromStack(buildStack(props));
}

type Json = Record<string, unknown>;

/** A CloudFormation value with every intrinsic rendered as text, for reading policy resources. */
export function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value && typeof value === 'object') {
    const o = value as Json;
    if ('Ref' in o) return `<${o.Ref}>`;
    if ('Fn::GetAtt' in o) return `<${(o['Fn::GetAtt'] as string[]).join('.')}>`;
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map(render).join(sep);
    }
    if ('Fn::Select' in o || 'Fn::Split' in o) return `<${JSON.stringify(o)}>`;
  }
  return JSON.stringify(value);
}

export interface Permission {
  readonly action: string;
  readonly resource: string;
  readonly effect: string;
  readonly condition?: unknown;
}

/** Every (action, resource) a role's inline and attached policies allow, resources rendered as text. */
export function permissionsOf(template: Template, roleLogicalId: string): Permission[] {
  const out: Permission[] = [];
  const addStatements = (statements: unknown) => {
    for (const s of statements as Json[]) {
      const actions = ([] as unknown[]).concat(s.Action as unknown[]) as string[];
      const resources = ([] as unknown[]).concat(s.Resource as unknown[]);
      for (const action of actions) {
        for (const resource of resources) {
          out.push({
            action,
            resource: render(resource),
            effect: s.Effect as string,
            condition: s.Condition,
          });
        }
      }
    }
  };
  const role = template.toJSON().Resources[roleLogicalId] as Json;
  for (const p of ((role.Properties as Json).Policies as Json[] | undefined) ?? []) {
    addStatements((p.PolicyDocument as Json).Statement);
  }
  const policies = template.findResources('AWS::IAM::Policy');
  for (const policy of Object.values(policies) as Json[]) {
    const props = policy.Properties as Json;
    const roles = (props.Roles as Json[]).map((r) => r.Ref);
    if (roles.includes(roleLogicalId)) addStatements((props.PolicyDocument as Json).Statement);
  }
  return out;
}

/** The logical id of the role of the function whose logical id starts with `prefix`. */
export function roleOfFunction(template: Template, prefix: string): string {
  const functions = template.findResources('AWS::Lambda::Function');
  const entry = Object.entries(functions).find(([id]) => id.startsWith(prefix));
  if (!entry) throw new Error(`no function ${prefix}* in the template`);
  const role = ((entry[1] as Json).Properties as Json).Role as Json;
  return (role['Fn::GetAtt'] as string[])[0] as string;
}

/** The state machine's definition as JSON: tokens (ARNs) become `<LogicalId.Attr>` text. */
export function stateMachineDefinition(template: Template): Json {
  const machines = Object.values(template.findResources('AWS::StepFunctions::StateMachine')) as Json[];
  if (machines.length !== 1) throw new Error(`expected one state machine, found ${machines.length}`);
  const definition = ((machines[0] as Json).Properties as Json).DefinitionString;
  return JSON.parse(render(definition)) as Json;
}
