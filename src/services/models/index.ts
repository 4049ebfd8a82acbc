/** The Live model table: which models exist and what each accepts in its setup. */
export * from './capabilities';
export * from './extra-models';
export * from './live-model-table';
export * from './voices';
