import { HOST_ENV_ALLOW_LIST } from "./protocol.js";

/**
 * The variables passed from the host's environment to the runtime. A trailing `*` matches a prefix.
 * Everything else in `process.env` stays in the host. The list lives in schemas/common.json.
 */
export const DEFAULT_ENV_ALLOW_LIST: readonly string[] = HOST_ENV_ALLOW_LIST;

export function isAllowed(name: string, allowList: readonly string[]): boolean {
  return allowList.some((entry) =>
    entry.endsWith("*") ? name.startsWith(entry.slice(0, -1)) : name === entry,
  );
}

/** The allow-listed part of `source`, then `extra` on top (extra is passed as given). */
export function buildEnv(
  allowList: readonly string[] = DEFAULT_ENV_ALLOW_LIST,
  extra: Record<string, string> = {},
  source: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(source)) {
    if (value !== undefined && isAllowed(name, allowList)) env[name] = value;
  }
  return { ...env, ...extra };
}
