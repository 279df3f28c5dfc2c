import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CONTEXT_KEYS, type ContextKey, settingsFromContext, unknownContextKeys } from './context';
import { DumpBagStack } from './dump-bag-stack';

// `npx cdk synth|deploy` runs this file (cdk.json "app"); settings come from cdk.json's context or -c key=value.
const app = new App();
const unknown = unknownContextKeys(app.node.getAllContext());
if (unknown.length > 0) {
  throw new Error(`unknown context ${unknown.join(', ')}: the settings are ${CONTEXT_KEYS.join(', ')}`);
}
const { stackName, props } = settingsFromContext((key: ContextKey) => app.node.tryGetContext(key));
new DumpBagStack(app, stackName, props);
// Every synth is checked against the AWS Solutions rules; a finding without a written reason fails it.
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
app.synth();
