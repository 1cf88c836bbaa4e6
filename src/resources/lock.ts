export const LOCK = 'lock';
