import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { DUMP_EVENT } from '../../functions/notify/events';
import { DUMP_EVENT_DETAIL_TYPE, DUMP_EVENT_SOURCE } from '../../infra/constructs/backup-workflow';
import { DIGEST_SCHEDULE } from '../../infra/constructs/notifier';
import { type ContextKey, settingsFromContext } from '../../infra/context';
import type { DumpBagStackProps } from '../../infra/dump-bag-stack';
import {
  baseProps,
  buildStack,
  keyFolder,
  permissionsOf,
  roleOfFunction,
  type TestKey,
  templateOf,
} from './support';

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:dump-bag/webhooks-AbCdEf';
/** The executions of the stack's state machine, by the name in its ARN, as permissionsOf renders them. */
const DESCRIBE_EXECUTIONS = String.raw`arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<\{"Fn::Select":\[6,\{"Fn::Split":\[":",\{"Ref":"BackupStateMachine\w+"\}\]\}\]\}>:\*`;
/** What the secret would hold; the template must never see it. */
const WEBHOOK = 'https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/n0tInTheTemplate';

let keys: TestKey;
beforeAll(async () => {
  keys = await keyFolder();
});

const props = (overrides: Partial<DumpBagStackProps> = {}) => baseProps(keys, overrides);
type Json = Record<string, unknown>;

function notifierId(template: Template): string | undefined {
  return Object.keys(template.findResources('AWS::Lambda::Function')).find((id) =>
    id.startsWith('NotifyHandler'),
  );
}

function envOf(template: Template, prefix: string): Record<string, unknown> {
  const fns = template.findResources('AWS::Lambda::Function') as Record<string, Json>;
  const entry = Object.entries(fns).find(([id]) => id.startsWith(prefix));
  if (!entry) throw new Error(`no function ${prefix}*`);
  return ((entry[1].Properties as Json).Environment as { Variables: Record<string, unknown> }).Variables;
}

describe('without notify', () => {
  it('has no notifier, no rule, no Lambda subscription and no digest schedule', () => {
    const template = templateOf(props());
    expect(notifierId(template)).toBeUndefined();
    template.resourceCountIs('AWS::Events::Rule', 0);
    template.resourcePropertiesCountIs('AWS::SNS::Subscription', { Protocol: 'lambda' }, 0);
    expect(JSON.stringify(template.toJSON())).not.toContain('DUMP_BAG_NOTIFY');
  });
});

describe('notify with a secret ARN', () => {
  let template: Template;
  let fnId: string;
  beforeAll(() => {
    template = templateOf(props({ notify: { secret: SECRET_ARN } }));
    fnId = notifierId(template) as string;
  });

  it('makes one notifier whose environment names the secret, never its value', () => {
    expect(fnId).toBeDefined();
    const env = envOf(template, 'NotifyHandler');
    expect(env).toMatchObject({
      DUMP_BAG_NOTIFY_SECRET: SECRET_ARN,
      DUMP_BAG_STATE_MACHINE_ARN: { Ref: expect.stringMatching(/^BackupStateMachine/) },
      DUMP_BAG_BUCKET: { Ref: expect.stringMatching(/^DumpsBucket/) },
    });
    expect(env.DUMP_BAG_NOTIFY_DIGEST).toBeUndefined();
    expect(env.DUMP_BAG_NOTIFY_URL).toBeUndefined();
  });

  it("lets its role read that one secret, describe its state machine's executions and write its own logs, nothing else", () => {
    const rights = permissionsOf(template, roleOfFunction(template, 'NotifyHandler'))
      .filter((p) => !p.action.startsWith('logs:'))
      .map((p) => `${p.effect} ${p.action} ${p.resource}`);
    expect(rights).toEqual([
      `Allow secretsmanager:GetSecretValue ${SECRET_ARN}`,
      expect.stringMatching(new RegExp(`^Allow states:DescribeExecution ${DESCRIBE_EXECUTIONS}$`)),
    ]);
    const logs = permissionsOf(template, roleOfFunction(template, 'NotifyHandler')).filter((p) =>
      p.action.startsWith('logs:'),
    );
    for (const p of logs) expect(p.resource).toMatch(/^<NotifyHandlerLogs/);
  });

  it("may describe the backup state machine's executions only (execution:<its name>:*), for a failed run's error", () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: roleOfFunction(template, 'NotifyHandler') }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Action: 'states:DescribeExecution',
            Effect: 'Allow',
            Resource: {
              'Fn::Join': [
                '',
                [
                  'arn:',
                  { Ref: 'AWS::Partition' },
                  ':states:',
                  { Ref: 'AWS::Region' },
                  ':',
                  { Ref: 'AWS::AccountId' },
                  ':execution:',
                  // The name in the state machine's ARN (arn:…:stateMachine:<name>).
                  {
                    'Fn::Select': [
                      6,
                      { 'Fn::Split': [':', { Ref: Match.stringLikeRegexp('^BackupStateMachine') }] },
                    ],
                  },
                  ':*',
                ],
              ],
            },
          },
        ]),
      },
    });
  });

  it("takes the backup's failed Dump Finished events and its failed runs, of this state machine only", () => {
    const target = [Match.objectLike({ Arn: { 'Fn::GetAtt': [fnId, 'Arn'] } })];
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: [DUMP_EVENT_SOURCE],
        'detail-type': [DUMP_EVENT_DETAIL_TYPE],
        detail: {
          stateMachine: [{ Ref: Match.stringLikeRegexp('^BackupStateMachine') }],
          status: [{ 'anything-but': ['ok'] }],
        },
      },
      Targets: target,
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: {
          stateMachineArn: [{ Ref: Match.stringLikeRegexp('^BackupStateMachine') }],
          status: ['FAILED', 'TIMED_OUT', 'ABORTED'],
        },
      },
      Targets: target,
    });
    template.resourceCountIs('AWS::Events::Rule', 2);
    // The notifier reads the workflow's event by the same names.
    expect(DUMP_EVENT).toEqual({ source: DUMP_EVENT_SOURCE, detailType: DUMP_EVENT_DETAIL_TYPE });
  });

  it('is subscribed to the alarm topic, and has no digest without digest', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'lambda',
      TopicArn: { Ref: Match.stringLikeRegexp('^AlarmsTopic') },
      Endpoint: { 'Fn::GetAtt': [fnId, 'Arn'] },
    });
    template.resourcePropertiesCountIs('AWS::Events::Rule', { ScheduleExpression: Match.anyValue() }, 0);
  });
});

describe('notify with a secret name and the digest', () => {
  let template: Template;
  let fnId: string;
  beforeAll(() => {
    template = templateOf(props({ notify: { secret: 'dump-bag/webhooks', digest: true } }));
    fnId = notifierId(template) as string;
  });

  it('reads the secret by its name (any of its ARNs), and lists dumps/ for the digest, nothing more', () => {
    expect(envOf(template, 'NotifyHandler')).toMatchObject({
      DUMP_BAG_NOTIFY_SECRET: 'dump-bag/webhooks',
      DUMP_BAG_NOTIFY_DIGEST: 'true',
    });
    const rights = permissionsOf(template, roleOfFunction(template, 'NotifyHandler')).filter(
      (p) => !p.action.startsWith('logs:'),
    );
    expect(rights.map((p) => `${p.action} ${p.resource}`)).toEqual([
      'secretsmanager:GetSecretValue arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:dump-bag/webhooks-??????',
      expect.stringMatching(new RegExp(`^states:DescribeExecution ${DESCRIBE_EXECUTIONS}$`)),
      expect.stringMatching(/^s3:ListBucket <DumpsBucket\w+\.Arn>$/),
    ]);
    expect(rights[2]?.condition).toEqual({ StringLike: { 's3:prefix': ['dumps/*'] } });
  });

  it('runs the digest daily from a schedule of its own', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: DIGEST_SCHEDULE,
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [fnId, 'Arn'] },
          Input: JSON.stringify({ action: 'digest' }),
        }),
      ],
    });
    template.resourceCountIs('AWS::Events::Rule', 3);
  });
});

describe('the webhook URL stays out of the template', () => {
  it('appears nowhere in a synthesized stack with notify, whose functions see only the secret', () => {
    const text = JSON.stringify(templateOf(props({ notify: { secret: SECRET_ARN, digest: true } })).toJSON());
    expect(text).toContain(SECRET_ARN);
    expect(text).not.toContain(WEBHOOK);
    expect(text).not.toContain('n0tInTheTemplate');
    expect(text).not.toContain('hooks.slack.com');
  });

  it('is refused as the setting itself, and the error does not repeat it', () => {
    let message = '';
    try {
      buildStack(props({ notify: { secret: WEBHOOK } }));
    } catch (error: unknown) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/`notify.secret` must name a Secrets Manager secret, not hold a webhook URL/);
    expect(message).toMatch(/aws secretsmanager create-secret/);
    expect(message).not.toContain('n0tInTheTemplate');
  });
});

describe('notify is validated', () => {
  const build = (notify: unknown) => () =>
    buildStack(props({ notify: notify as DumpBagStackProps['notify'] }));
  it('takes a complete ARN or a name', () => {
    expect(build({ secret: 'has space' })).toThrow(/`notify.secret` must be the complete ARN .* or its name/);
    // A partial ARN (no -AbCdEf) would not match the secret's real ARN in the policy.
    expect(build({ secret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:hooks' })).toThrow(
      /`notify.secret` must be the complete ARN/,
    );
    expect(build({ secret: 'team/hooks', digest: 'yes' })).toThrow(/`notify.digest` must be true or false/);
  });
});

describe('context notify and keyExpiryWarningDays', () => {
  const from = (context: Partial<Record<ContextKey, unknown>>) =>
    settingsFromContext((key) => context[key]).props;

  it('reads notify as a name, an object, or JSON text from -c', () => {
    expect(from({}).notify).toBeUndefined();
    expect(from({ notify: ' dump-bag/webhooks ' }).notify).toEqual({ secret: 'dump-bag/webhooks' });
    expect(from({ notify: { secret: SECRET_ARN, digest: true } }).notify).toEqual({
      secret: SECRET_ARN,
      digest: true,
    });
    expect(from({ notify: '{"secret":"x","digest":false}' }).notify).toEqual({ secret: 'x', digest: false });
    expect(() => from({ notify: { digest: true } })).toThrow(/context notify must be a secret name or ARN/);
    expect(() => from({ notify: { secret: 'x', digest: 'yes' } })).toThrow(/digest must be true or false/);
  });

  it('gives one keyExpiryWarningDays to the plan step, the API (status page) and the alarm', () => {
    const template = templateOf({ ...from({ keyExpiryWarningDays: '12' }), keys: { folder: keys.folder } });
    expect(envOf(template, 'BackupPlan').DUMP_BAG_KEY_EXPIRY_WARNING_DAYS).toBe('12');
    expect(envOf(template, 'ApiHandler').DUMP_BAG_KEY_EXPIRY_WARNING_DAYS).toBe('12');
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'KeyExpiresInDays',
      Threshold: 12,
    });
  });

  it('defaults to 30 everywhere, and a bad value stops the synth naming the context key', () => {
    const template = templateOf(props());
    expect(envOf(template, 'BackupPlan').DUMP_BAG_KEY_EXPIRY_WARNING_DAYS).toBe('30');
    expect(envOf(template, 'ApiHandler').DUMP_BAG_KEY_EXPIRY_WARNING_DAYS).toBe('30');
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'KeyExpiresInDays',
      Threshold: 30,
    });
    expect(() => buildStack(props({ keyExpiryWarningDays: 0 }))).toThrow(
      /`keyExpiryWarningDays` must be a whole number .*context keyExpiryWarningDays/,
    );
  });
});
