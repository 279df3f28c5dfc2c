import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { GpgRing } from '../support/gpg-keys';
import { tempDir } from '../support/temp';
import { baseProps, buildStack, keyFolder, type TestKey } from './support';

describe('key sources in the stack', () => {
  let keys: TestKey;
  beforeAll(async () => {
    keys = await keyFolder();
  });

  it('alarms when a recipient key expires within 30 days, from the plan step’s KeyExpiresInDays', () => {
    const template = Template.fromStack(buildStack(baseProps(keys)));
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'DumpBag',
      MetricName: 'KeyExpiresInDays',
      Dimensions: [{ Name: 'Service', Value: 'dump-bag' }],
      Statistic: 'Minimum',
      Period: 86400,
      Threshold: 30,
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^AlarmsTopic') }],
      AlarmDescription: Match.stringLikeRegexp('gpg --quick-set-expire'),
    });
  });

  it('a secret key anywhere in the keys folder stops the synth, naming the file', () => {
    const ring = new GpgRing();
    const fingerprint = ring.key('leak@example.com');
    for (const [name, bytes] of [
      ['leak.gpg', ring.secretKey(fingerprint)],
      ['notes.txt', ring.secretKey(fingerprint, true)],
    ] as const) {
      const folder = tempDir('dump-bag-infra-secret-');
      cpSync(keys.folder, folder, { recursive: true });
      writeFileSync(join(folder, name), bytes);
      expect(() => buildStack({ keys: { folder } })).toThrow(
        new RegExp(`${join(folder, name).replace(/[.]/g, '\\.')} holds a private key`),
      );
    }
  });

  it('keys from a URL need recipients pinned by full fingerprint', () => {
    const url = 'https://bag.example.com/keys';
    expect(() => buildStack({ keys: { url } })).toThrow(
      /`recipients` must pin the readers when the keys come from `url`.*got nothing/,
    );
    expect(() => buildStack({ keys: { url, recipients: 'ada@example.com' } })).toThrow(
      /`recipients` must pin the readers.*got "ada@example.com"/,
    );
    expect(() => buildStack({ keys: { url, recipients: keys.fingerprint } })).not.toThrow();
  });
});
