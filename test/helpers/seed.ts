/** The suite's seed: `TEST_SEED` or the clock; printed in every failure message that depends on it. */
export function suiteSeed(): number {
  const fromEnv = Number(process.env.TEST_SEED);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : (Date.now() % 1_000_000) + 1;
}

/** Runs `f`; a failure is rethrown with the seed in front of its message (the seed replays the timings). */
export async function withSeed<T>(seed: number, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof Error) err.message = `[seed ${seed}] ${err.message}`;
    throw err;
  }
}
