export { Eddo, EddoProps, FunctionsFrom, LogLevel, SbtGeneration, SbtOptions } from './eddo';
export { CheckedPolicy, EddoPolicy, PolicyLists } from './policy';
