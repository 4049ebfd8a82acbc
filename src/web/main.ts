import { App } from './app';

/** Entry point of the page bundle (a module script: runs after the document is parsed). */
const workletUrl = document.body.dataset.workletUrl ?? '';
new App(workletUrl).init();
