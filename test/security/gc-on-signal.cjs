// Test-only preload for spawned servers (node --expose-gc --require <this>): SIGUSR2 runs a full garbage
// collection, so a test can measure what the process really retains (heap and external memory) from outside.
process.on('SIGUSR2', () => {
  if (typeof global.gc === 'function') global.gc();
});
