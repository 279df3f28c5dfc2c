import { Aspects, Duration } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DumpBagStackProps } from '../../infra/dump-bag-stack';
import { baseProps, buildStack, keyFolder, type TestKey } from './support';

let keys: TestKey;
beforeAll(async () => {
  keys = await keyFolder();
});

/** Every option that adds resources: KMS, Object Lock, no access logs, VPC, JWT, e-mails, listed databases, the notifier with its digest. */
const everything = (k: TestKey): DumpBagStackProps =>
  baseProps(k, {
    connection: {
      host: 'db.internal',
      secretName: 'prod/db',
      vpcAttributes: {
        vpcId: 'vpc-0a1b2c3d4e5f60718',
        availabilityZones: ['eu-west-1a', 'eu-west-1b'],
        privateSubnetIds: ['subnet-0a1b2c3d4e5f6071a', 'subnet-0a1b2c3d4e5f6071b'],
        privateSubnetRouteTableIds: ['rtb-0a1b2c3d4e5f6071a', 'rtb-0a1b2c3d4e5f6071b'],
      },
    },
    bucket: { encryption: 'kms', objectLock: { days: 7 }, accessLogDays: 0 },
    backup: { databases: ['app', 'billing'], schedules: ['cron(0 3 * * ? *)', 'rate(12 hours)'] },
    api: {
      authorization: { type: 'jwt', issuer: 'https://issuer.example.com', audience: ['dump-bag'] },
      urlExpiry: Duration.hours(1),
    },
    alarms: { emails: ['ops@example.com'] },
    notify: { secret: 'dump-bag/webhooks', digest: true },
  });

/** What a suppression may be for; a new one must be added here, with the reason read by a reviewer. */
const ALLOWED_SUPPRESSIONS = new Set([
  'AwsSolutions-IAM5', // dumps/* in one bucket; <function>:*; the state machine's execution:<name>:*; ENI, log-delivery and X-Ray actions without resources
  'AwsSolutions-L1', // nodejs22.x on purpose
  'AwsSolutions-SMG4', // a created secret for a user the stack does not manage
  'AwsSolutions-APIG4', // GET /keys and GET /recipients are public
  'AwsSolutions-S1', // access logs off on request
  'AwsSolutions-ECS2', // the Fargate dump's settings as environment variables, as the dump function has them
  'AwsSolutions-ECS4', // no Container Insights for one short task per large database
]);

interface Suppression {
  readonly id: string;
  readonly reason: string;
  /** The findings (e.g. which wildcard) it covers; absent means every finding of the rule. */
  readonly appliesTo?: unknown[];
  readonly resource: string;
}

interface NagMetadata {
  readonly Metadata?: {
    readonly cdk_nag?: {
      readonly rules_to_suppress?: { id: string; reason: string; applies_to?: unknown[] }[];
    };
  };
}

function suppressions(template: Template): Suppression[] {
  const resources = template.toJSON().Resources as Record<string, NagMetadata>;
  return Object.entries(resources).flatMap(([resource, body]) =>
    (body.Metadata?.cdk_nag?.rules_to_suppress ?? []).map((rule) => ({
      id: rule.id,
      reason: rule.reason,
      appliesTo: rule.applies_to,
      resource,
    })),
  );
}

describe.each([
  ['the default stack', (k: TestKey) => baseProps(k)],
  ['a stack with every option', everything],
])('cdk-nag AwsSolutions on %s', (_name, props) => {
  let template: Template;
  let annotations: Annotations;

  beforeAll(() => {
    const stack = buildStack(props(keys));
    Aspects.of(stack).add(new AwsSolutionsChecks());
    annotations = Annotations.fromStack(stack);
    template = Template.fromStack(stack);
  });

  it('has no finding left unsuppressed', () => {
    const findings = [
      ...annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-')),
      ...annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-')),
    ].map((m) => `${m.id}: ${String(m.entry.data).slice(0, 160)}`);
    expect(findings).toEqual([]);
  });

  it('gives every suppression a reason, for an allowed rule', () => {
    const found = suppressions(template);
    expect(found.length).toBeGreaterThan(0);
    for (const s of found) {
      expect(ALLOWED_SUPPRESSIONS, `${s.resource}: ${s.id}`).toContain(s.id);
      // A sentence that says why, not a placeholder.
      expect(s.reason.length, `${s.resource}: ${s.id}`).toBeGreaterThanOrEqual(60);
    }
  });

  it('suppresses wildcards only for the dumps/ prefix, function versions and action-only permissions', () => {
    const wildcards = suppressions(template).filter((x) => x.id === 'AwsSolutions-IAM5');
    expect(wildcards.length).toBeGreaterThan(0);
    for (const s of wildcards) {
      // appliesTo scopes the suppression to the listed wildcards; without it every wildcard would pass.
      expect(s.appliesTo, s.resource).toBeDefined();
    }
  });
});
