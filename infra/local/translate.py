"""A template as CloudFormation runs it: its transforms applied, as JSON.

CloudFormation applies a template's transforms in the order they are listed before it creates
anything. The local stack does the same, so that it provisions what AWS would:

- AWS::LanguageExtensions: Fn::ForEach expanded here, as CloudFormation's documentation for
  Fn::ForEach describes it (the identifier replaced in each output key and value; the collection
  a list or a Ref to a list parameter). The other language extensions are refused by name: the
  local stack does not run them, and does not guess.
- AWS::Serverless-2016-10-31: AWS's own SAM translator (aws-sam-translator, the package SAM and
  CloudFormation use), with each function's CodeUri as `sam package` leaves it (an S3 object).

Parameter values are checked as CloudFormation checks them (an unknown name, a missing value,
Type, AllowedValues, AllowedPattern, MinLength/MaxLength, MinValue/MaxValue) before anything
else. A parameter of type AWS::SSM::Parameter::Value<String> (the CDK's BootstrapVersion) takes
the value of the account's SSM parameter it names, from the --ssm arguments (what the local
account holds); one that does not exist is refused, as CloudFormation refuses it. Then the
template's Rules: each assertion evaluated (Fn::Contains, Fn::EachMemberEquals, Fn::EachMemberIn,
Fn::Equals, Fn::Not, Fn::And, Fn::Or, Ref), a false one refused with its AssertDescription.
Prints {"template": ..., "parameters": {name: value}} on success; on a template or a value
CloudFormation would refuse, prints the reason on stderr and exits 1.

Usage: python translate.py TEMPLATE|- [Name=Value | Name?=Value | --ssm=NAME=VALUE ...]
  Name?=Value sets Name only if the template declares it (the local stack's own settings).
"""

import copy
import json
import os
import re
import sys

REGION = "us-east-1"
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
SERVERLESS = "AWS::Serverless-2016-10-31"
KNOWN_TRANSFORMS = (LANGUAGE_EXTENSIONS, SERVERLESS)
# Language extensions the local stack does not run; a template using one is refused by name.
NOT_RUN = ("Fn::Length", "Fn::ToJsonString")


class Refused(Exception):
    pass


SSM_STRING = "AWS::SSM::Parameter::Value<String>"


def parameter_values(template, overrides, ssm=None):
    """Each parameter's value as CloudFormation would pass it, checked as CloudFormation checks it."""
    ssm = ssm or {}
    declared = template.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise Refused(f"parameters {unknown} do not exist in the template")
    values = {}
    for name, p in declared.items():
        kind = p.get("Type")
        if name in overrides:
            value = overrides[name]
        elif "Default" in p:
            value = p["Default"]
            value = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            if isinstance(p["Default"], bool):
                value = value.lower()
        else:
            raise Refused(f"parameter {name} has no value and no Default")
        if kind == SSM_STRING:
            if value not in ssm:
                raise Refused(f"parameter {name}: the SSM parameter {value} does not exist in the account")
            value = ssm[value]
            kind = "String"
        items = value.split(",") if kind in ("CommaDelimitedList", "List<Number>") else [value]
        where = f"parameter {name} ({value!r})"
        if kind not in ("String", "Number", "CommaDelimitedList", "List<Number>"):
            raise Refused(f"parameter {name}: type {kind} is not supported by the local stack")
        for item in items:
            if kind in ("Number", "List<Number>"):
                try:
                    number = float(item)
                except ValueError:
                    raise Refused(f"{where}: {item!r} is not a number")
                if "MinValue" in p and number < float(p["MinValue"]):
                    raise Refused(f"{where}: below MinValue {p['MinValue']}")
                if "MaxValue" in p and number > float(p["MaxValue"]):
                    raise Refused(f"{where}: above MaxValue {p['MaxValue']}")
            if "AllowedValues" in p and item not in [str(v) for v in p["AllowedValues"]]:
                raise Refused(f"{where}: not one of AllowedValues {p['AllowedValues']}")
            # CloudFormation applies the pattern to the whole value, or to each item of a list.
            if "AllowedPattern" in p and not re.fullmatch(p["AllowedPattern"], item):
                raise Refused(f"{where}: does not match AllowedPattern {p['AllowedPattern']}")
            if "MinLength" in p and len(item) < int(p["MinLength"]):
                raise Refused(f"{where}: shorter than MinLength {p['MinLength']}")
            if "MaxLength" in p and len(item) > int(p["MaxLength"]):
                raise Refused(f"{where}: longer than MaxLength {p['MaxLength']}")
        values[name] = value
    return values


def rule_value(v, parameters, declared, path):
    """A value in a rule: a string, a list, a Ref to a parameter, or a rule function."""
    if isinstance(v, (str, int, float, bool)):
        return str(v).lower() if isinstance(v, bool) else str(v)
    if isinstance(v, list):
        return [rule_value(x, parameters, declared, f"{path}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, dict) and len(v) == 1:
        (fn, args), = v.items()
        if fn == "Ref":
            if args not in parameters:
                raise Refused(f"{path}: Ref {args} is not a parameter (rules may only refer to parameters)")
            kind = (declared.get(args) or {}).get("Type")
            value = parameters[args]
            return value.split(",") if kind in ("CommaDelimitedList", "List<Number>") else value
        return rule_condition(v, parameters, declared, path)
    raise Refused(f"{path}: not a value a rule can use")


def rule_condition(v, parameters, declared, path):
    """A rule function's truth, as CloudFormation's rule functions define it."""
    if not (isinstance(v, dict) and len(v) == 1):
        raise Refused(f"{path}: a rule condition is one rule function")
    (fn, args), = v.items()
    val = lambda x, i: rule_value(x, parameters, declared, f"{path}.{fn}[{i}]")
    if fn in ("Fn::Equals", "Fn::Contains", "Fn::EachMemberEquals", "Fn::EachMemberIn"):
        if not (isinstance(args, list) and len(args) == 2):
            raise Refused(f"{path}: {fn} takes two arguments")
        a, b = val(args[0], 0), val(args[1], 1)
        if fn == "Fn::Equals":
            return a == b
        if fn == "Fn::Contains":
            return isinstance(a, list) and b in a
        if fn == "Fn::EachMemberEquals":
            return isinstance(a, list) and all(x == b for x in a)
        return isinstance(a, list) and isinstance(b, list) and all(x in b for x in a)
    if fn == "Fn::Not":
        if not (isinstance(args, list) and len(args) == 1):
            raise Refused(f"{path}: Fn::Not takes one condition")
        return not rule_condition(args[0], parameters, declared, f"{path}.Fn::Not[0]")
    if fn in ("Fn::And", "Fn::Or"):
        if not (isinstance(args, list) and 2 <= len(args) <= 10):
            raise Refused(f"{path}: {fn} takes 2 to 10 conditions")
        truths = [rule_condition(x, parameters, declared, f"{path}.{fn}[{i}]") for i, x in enumerate(args)]
        return all(truths) if fn == "Fn::And" else any(truths)
    raise Refused(f"{path}: {fn} is not a rule function the local stack evaluates")


def check_rules(template, parameters):
    """CloudFormation checks a template's Rules before it creates anything."""
    declared = template.get("Parameters") or {}
    for name, rule in (template.get("Rules") or {}).items():
        path = f"Rules.{name}"
        if "RuleCondition" in rule and not rule_condition(rule["RuleCondition"], parameters, declared, f"{path}.RuleCondition"):
            continue
        for i, a in enumerate(rule.get("Assertions") or []):
            if not rule_condition(a.get("Assert"), parameters, declared, f"{path}.Assertions[{i}].Assert"):
                raise Refused(f"{path}: {a.get('AssertDescription', 'an assertion is false')}")


def transforms(template):
    t = template.get("Transform", [])
    listed = [t] if isinstance(t, str) else t
    if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        raise Refused("Transform must be a name or a list of names")
    for name in listed:
        if name not in KNOWN_TRANSFORMS:
            raise Refused(f"transform {name} is not run by the local stack (it runs {KNOWN_TRANSFORMS})")
    if LANGUAGE_EXTENSIONS in listed and SERVERLESS in listed:
        if listed.index(LANGUAGE_EXTENSIONS) > listed.index(SERVERLESS):
            raise Refused(f"{LANGUAGE_EXTENSIONS} must come before {SERVERLESS} in Transform")
    return listed


def find_functions(value, names, path):
    """Refuses any of `names` anywhere in value."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in names:
                raise Refused(f"{path}: {k} is a language extension the local stack does not run")
            find_functions(v, names, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            find_functions(v, names, f"{path}[{i}]")


def foreach_keys(value, path):
    """The paths of every Fn::ForEach::* key in value."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and k.startswith("Fn::ForEach::"):
                yield f"{path}.{k}"
            yield from foreach_keys(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from foreach_keys(v, f"{path}[{i}]")


def substitute(value, identifier, item):
    """The ForEach body for one item: ${Id} and &{Id} in strings, and Ref Id, replaced."""
    bare = re.sub(r"[^A-Za-z0-9]", "", item)
    if isinstance(value, str):
        return value.replace("${" + identifier + "}", item).replace("&{" + identifier + "}", bare)
    if isinstance(value, list):
        return [substitute(v, identifier, item) for v in value]
    if isinstance(value, dict):
        if value == {"Ref": identifier}:
            return item
        return {substitute(k, identifier, item): substitute(v, identifier, item) for k, v in value.items()}
    return value


def collection(value, key, parameters, declared):
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise Refused(f"{key}: every item of the collection must be a string")
        return value
    if isinstance(value, dict) and list(value) == ["Ref"]:
        name = value["Ref"]
        kind = (declared.get(name) or {}).get("Type")
        if kind in ("CommaDelimitedList", "List<Number>"):
            return parameters[name].split(",")
        raise Refused(f"{key}: the collection Ref {name} is not a list parameter")
    raise Refused(f"{key}: the collection must be a list or a Ref to a list parameter")


def expand(mapping, path, parameters, declared, identifiers, loop_names):
    """`mapping` with every Fn::ForEach::* key expanded, recursively (values too)."""
    if not isinstance(mapping, dict):
        if isinstance(mapping, list):
            return [expand(v, f"{path}[{i}]", parameters, declared, identifiers, loop_names) for i, v in enumerate(mapping)]
        return mapping
    out = {}
    for key, value in mapping.items():
        if not key.startswith("Fn::ForEach::"):
            if key in out:
                raise Refused(f"{path}: {key} is declared twice")
            out[key] = expand(value, f"{path}.{key}", parameters, declared, identifiers, loop_names)
            continue
        where = f"{path}.{key}"
        loop = key[len("Fn::ForEach::"):]
        if not re.fullmatch(r"[A-Za-z0-9]+", loop):
            raise Refused(f"{where}: the loop name must be alphanumeric")
        if loop in loop_names:
            raise Refused(f"{where}: the loop name {loop} is used twice")
        loop_names.add(loop)
        if not (isinstance(value, list) and len(value) == 3):
            raise Refused(f"{where}: expects [identifier, collection, {{OutputKey: OutputValue}}]")
        identifier, items, body = value
        if not isinstance(identifier, str) or not identifier:
            raise Refused(f"{where}: the identifier must be a non-empty string")
        if identifier in declared:
            raise Refused(f"{where}: the identifier {identifier} is also a parameter's name")
        if identifier in identifiers:
            raise Refused(f"{where}: the identifier {identifier} is an enclosing loop's")
        if not isinstance(body, dict) or not body:
            raise Refused(f"{where}: the fragment must be a mapping of OutputKey: OutputValue")
        for output_key in body:
            if not output_key.startswith("Fn::ForEach::") and "${" + identifier + "}" not in output_key and "&{" + identifier + "}" not in output_key:
                raise Refused(f"{where}: the output key {output_key} must contain ${{{identifier}}} or &{{{identifier}}}")
        for item in collection(items, where, parameters, declared):
            fragment = substitute(body, identifier, item)
            expanded = expand(fragment, where, parameters, declared, identifiers | {identifier}, loop_names)
            for k, v in expanded.items():
                if k in out or k in mapping:
                    raise Refused(f"{where}: the key {k} it makes for {item!r} already exists")
                out[k] = v
    return out


def language_extensions(template, parameters):
    find_functions(template, NOT_RUN, "template")
    declared = template.get("Parameters") or {}
    out = dict(template)
    loop_names = set()
    for section in ("Conditions", "Resources", "Outputs"):
        if section in template:
            out[section] = expand(template[section], section, parameters, declared, frozenset(), loop_names)
    clashes = loop_names & set(out.get("Resources") or {})
    if clashes:
        raise Refused(f"Fn::ForEach loop names {sorted(clashes)} are also resources' logical ids")
    for section in template:
        if section not in ("Conditions", "Resources", "Outputs"):
            for path in foreach_keys(template[section], section):
                raise Refused(f"{path}: Fn::ForEach may be used only in Conditions, Resources and Outputs")
    return out


def serverless(template, parameters):
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    from samtranslator.translator.transform import transform

    class NoManagedPolicyNames:
        """Policies are given as statements or ARNs; a policy name would need IAM to look up."""

        def load(self):
            raise Refused("a function names a managed policy by name: give its ARN")

        def get(self, name):
            raise Refused(f"a function names the managed policy {name}: give its ARN")

    template = copy.deepcopy(template)
    for name, r in (template.get("Resources") or {}).items():
        if isinstance(r, dict) and r.get("Type") == "AWS::Serverless::Function":
            # What `sam package` leaves: the built artifact in S3.
            r.setdefault("Properties", {})["CodeUri"] = f"s3://eddo-local-artifacts/{name}.zip"
    return transform(template, dict(parameters), NoManagedPolicyNames())


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    from samtranslator.yaml_helper import yaml_parse

    source = sys.stdin.read() if sys.argv[1] == "-" else open(sys.argv[1]).read()
    overrides, defaults, ssm = {}, {}, {}
    for arg in sys.argv[2:]:
        if arg.startswith("--ssm="):
            name, sep, value = arg[len("--ssm="):].partition("=")
            ssm[name] = value
            continue
        name, sep, value = arg.partition("=")
        if not sep:
            print(f"not Name=Value: {arg}", file=sys.stderr)
            return 2
        if name.endswith("?"):
            defaults[name[:-1]] = value
        else:
            overrides[name] = value
    try:
        template = yaml_parse(source)
        if not isinstance(template, dict):
            raise Refused("a template is a mapping")
        declared = template.get("Parameters") or {}
        for name, value in defaults.items():
            if name in declared:
                overrides.setdefault(name, value)
        parameters = parameter_values(template, overrides, ssm)
        check_rules(template, parameters)
        listed = transforms(template)
        if LANGUAGE_EXTENSIONS in listed:
            template = language_extensions(template, parameters)
        else:
            find_functions(template, NOT_RUN, "template")
            for path in foreach_keys(template, "template"):
                raise Refused(f"{path}: Fn::ForEach needs the {LANGUAGE_EXTENSIONS} transform")
        if SERVERLESS in listed:
            template = serverless(template, parameters)
        template.pop("Transform", None)
    except Refused as e:
        print(f"CloudFormation would refuse the template: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # the SAM translator's own refusals
        print(f"CloudFormation would refuse the template: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump({"template": template, "parameters": parameters}, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
