import { Worker } from 'node:worker_threads';

/**
 * Starts a worker thread on one of Myelin's modules, named relative to `base` without its
 * extension. Run from the TypeScript sources (under tsx), a new thread does not inherit tsx's
 * loader on Node 20, so the thread registers it before importing the module.
 */
export function startModuleThread(base: string, relative: string, workerData: unknown): Worker {
  const fromSource = base.endsWith('.ts');
  const url = new URL(`${relative}${fromSource ? '.ts' : '.js'}`, base).href;
  if (!fromSource) return new Worker(new URL(url), { workerData });
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}
