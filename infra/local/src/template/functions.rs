//! CloudFormation's functions as its template reference documents them: their names, which may
//! appear inside which ("Supported functions"), and the attributes `Fn::GetAtt` may ask of each
//! resource type the local stack knows ("Return values").

/// The functions of CloudFormation's template language, by their documented names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Ref,
    GetAtt,
    Sub,
    Join,
    Split,
    Select,
    If,
    Base64,
    FindInMap,
    GetAZs,
    ImportValue,
    Cidr,
    Length,
    ToJsonString,
    Equals,
    Not,
    And,
    Or,
    Condition,
}

pub(super) use Function::*;

/// Each function and its name in a template.
pub(super) const NAMES: [(Function, &str); 19] = [
    (Ref, "Ref"),
    (Condition, "Condition"),
    (GetAtt, "Fn::GetAtt"),
    (Sub, "Fn::Sub"),
    (Join, "Fn::Join"),
    (Split, "Fn::Split"),
    (Select, "Fn::Select"),
    (If, "Fn::If"),
    (Base64, "Fn::Base64"),
    (FindInMap, "Fn::FindInMap"),
    (GetAZs, "Fn::GetAZs"),
    (ImportValue, "Fn::ImportValue"),
    (Cidr, "Fn::Cidr"),
    (Length, "Fn::Length"),
    (ToJsonString, "Fn::ToJsonString"),
    (Equals, "Fn::Equals"),
    (Not, "Fn::Not"),
    (And, "Fn::And"),
    (Or, "Fn::Or"),
];

impl Function {
    pub(super) fn parse(key: &str) -> Option<Function> {
        NAMES.iter().find(|(_, n)| *n == key).map(|(f, _)| *f)
    }

    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(f, _)| *f == self)
            .map(|(_, n)| *n)
            .expect("every function is named")
    }
}

// The "Supported functions" of each function's page in CloudFormation's template reference.
/// Anywhere in a resource property or an output.
pub(super) const IN_PROPERTY: &[Function] = &[
    Ref,
    GetAtt,
    Sub,
    Join,
    Split,
    Select,
    If,
    Base64,
    FindInMap,
    GetAZs,
    ImportValue,
    Cidr,
];
/// Fn::Sub's variable values, Fn::Split's source, Fn::If's values, Fn::Base64's value.
pub(super) const STRING_ARGS: &[Function] = &[
    Base64,
    FindInMap,
    GetAtt,
    GetAZs,
    If,
    ImportValue,
    Join,
    Select,
    Sub,
    Ref,
];
/// Fn::Join's list and its items.
pub(super) const JOIN_LIST: &[Function] = &[
    Base64,
    FindInMap,
    GetAtt,
    GetAZs,
    If,
    ImportValue,
    Join,
    Split,
    Select,
    Sub,
    Ref,
];
pub(super) const SELECT_INDEX: &[Function] = &[Ref, FindInMap];
pub(super) const SELECT_LIST: &[Function] = &[FindInMap, GetAtt, GetAZs, If, Split, Ref];
pub(super) const GETATT_NAME: &[Function] = &[Ref];
/// Inside Fn::Equals (and the other condition functions' conditions).
pub(super) const IN_CONDITION: &[Function] = &[FindInMap, Ref, Equals, Not, And, Or, Condition];
pub(super) const CONDITIONS: &[Function] = &[Equals, Not, And, Or, Condition];

/// The attributes `Fn::GetAtt` may ask of each resource type (CloudFormation's "Return values").
pub(super) fn attributes(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "AWS::Events::EventBus" => &["Arn", "Name", "Policy"],
        "AWS::Events::Archive" => &["Arn"],
        "AWS::Events::Rule" => &["Arn"],
        "AWS::Events::Connection" => &["Arn", "ArnForPolicy", "SecretArn"],
        "AWS::Events::ApiDestination" => &["Arn", "ArnForPolicy"],
        "AWS::DynamoDB::Table" => &["Arn", "StreamArn"],
        "AWS::SecretsManager::Secret" => &["Id"],
        "AWS::SQS::Queue" => &["Arn", "QueueName", "QueueUrl"],
        "AWS::SQS::QueuePolicy" => &["Id"],
        "AWS::CloudWatch::Alarm" => &["Arn"],
        "AWS::Logs::LogGroup" => &["Arn"],
        "AWS::IAM::Role" => &["Arn", "RoleId"],
        "AWS::IAM::RolePolicy" => &[],
        "AWS::IAM::ManagedPolicy" => &["PolicyArn"],
        "AWS::KMS::Key" => &["Arn", "KeyId"],
        "AWS::KMS::Alias" => &[],
        "AWS::SSM::Parameter" => &["Type", "Value"],
        "AWS::Lambda::Function" => &[
            "Arn",
            "SnapStartResponse",
            "SnapStartResponse.ApplyOn",
            "SnapStartResponse.OptimizationStatus",
        ],
        "AWS::Lambda::Url" => &["FunctionArn", "FunctionUrl"],
        "AWS::Lambda::Permission" => &[],
        "AWS::Lambda::EventInvokeConfig" => &[],
        _ => return None,
    })
}
