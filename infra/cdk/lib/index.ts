export { Eddo, EddoProps, LogLevel, SbtGeneration, SbtOptions } from './eddo';
export { CheckedPolicy, EddoPolicy, PolicyLists } from './policy';
