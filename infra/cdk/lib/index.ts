export { Eddo } from './eddo';
export { CDEventsOptions, EddoProps, FunctionOverrides, FunctionsFrom, GitHubAppOptions, GitLabStatusesOptions, LogLevel, SbtGeneration, SbtOptions, SourceBundling } from './props';
export { CheckedPolicy, EddoPolicy, PolicyLists } from './policy';
