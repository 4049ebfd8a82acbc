import { runLauncher } from './launcher-process';

// The launcher process's entry point (started by FfmpegLauncher; nothing else imports this file).
runLauncher();
