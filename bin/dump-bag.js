#!/usr/bin/env node
// The dump-bag command runs its TypeScript sources directly through tsx, so a clone needs no build step.
import { register } from 'tsx/esm/api';

// package-lock.json pins the SDK, so its notice about future Node versions is not the user's to act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
await import('../cli/main.ts');
