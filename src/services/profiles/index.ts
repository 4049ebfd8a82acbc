/** Named profiles: defaults (and locks) for the per-session options, from built-ins and a reloadable file. */
export * from './profile';
export * from './builtin-profiles';
export * from './profile-file';
export * from './profile-store';
