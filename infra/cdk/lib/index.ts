export { Eddo, EddoProps, LogLevel, SbtOptions } from './eddo';
export { CheckedPolicy, PolicyLists, checkPolicy, eddoCommand } from './policy';
