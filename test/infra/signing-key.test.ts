import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { baseProps, keyFolder, templateOf } from './support';

let template: Template;
beforeAll(async () => {
  template = templateOf(baseProps(await keyFolder()));
});

/** Each IAM policy's roles and the KMS actions it allows. */
function kmsGrants(): { roles: string[]; actions: string[] }[] {
  return Object.values(template.findResources('AWS::IAM::Policy')).map((policy) => {
    const props = policy.Properties as {
      Roles: { Ref: string }[];
      PolicyDocument: { Statement: { Action: string | string[] }[] };
    };
    return {
      roles: props.Roles.map((r) => r.Ref),
      actions: props.PolicyDocument.Statement.flatMap((s) => [s.Action].flat()).filter((a) =>
        a.startsWith('kms:'),
      ),
    };
  });
}

describe('the record signing key', () => {
  it('is a retained KMS ECC_NIST_P256 SIGN_VERIFY key', () => {
    template.hasResource('AWS::KMS::Key', {
      Properties: Match.objectLike({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' }),
      DeletionPolicy: 'Retain',
    });
  });

  it('kms:Sign is held by the dump role only; kms:GetPublicKey by the API role', () => {
    const grants = kmsGrants();
    const signers = grants.filter((g) => g.actions.includes('kms:Sign')).flatMap((g) => g.roles);
    // The Fargate task role, when the stack has one, writes dumps too.
    expect(signers.length).toBeGreaterThanOrEqual(1);
    for (const role of signers) expect(role).toMatch(/^Backup(Dump|.*Task)\w*Role/);
    expect(signers.some((r) => r.startsWith('BackupDumpRole'))).toBe(true);
    const readers = grants.filter((g) => g.actions.includes('kms:GetPublicKey')).flatMap((g) => g.roles);
    expect(readers).toEqual([expect.stringMatching(/^ApiHandlerRole/)]);
    const apiActions = grants
      .filter((g) => g.roles.some((r) => r.startsWith('ApiHandlerRole')))
      .flatMap((g) => g.actions);
    expect(apiActions).not.toContain('kms:Sign');
  });

  it('the dump and API functions name the key; GET /signing-key is public', () => {
    const env = (prefix: string) => {
      const [fn] = Object.entries(template.findResources('AWS::Lambda::Function')).filter(([id]) =>
        id.startsWith(prefix),
      );
      if (!fn) throw new Error(`no function ${prefix}*`);
      return (fn[1].Properties as { Environment: { Variables: Record<string, unknown> } }).Environment
        .Variables;
    };
    const keyRef = { Ref: expect.stringMatching(/^SigningKey/) };
    expect(env('BackupDump').DUMP_BAG_SIGNING_KEY_ID).toEqual(keyRef);
    expect(env('ApiHandler').DUMP_BAG_SIGNING_KEY_ID).toEqual(keyRef);
    expect(env('BackupPlan').DUMP_BAG_SIGNING_KEY_ID).toBeUndefined();
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', {
      RouteKey: 'GET /signing-key',
      AuthorizationType: 'NONE',
    });
  });
});
