"""labkit.template: one loader and one evaluator for labkit and the local engine."""

from __future__ import annotations

import pytest

from labkit import artifacts
from labkit.local.cloudformation import engine, operations, parameters
from labkit.template import (
    NO_VALUE,
    Evaluator,
    TemplateError,
    load_template,
    pseudo_parameters,
    references,
)

REGION = "eu-west-2"
ACCOUNT = "123456789012"


def test_labkit_and_the_local_engine_share_one_template_module() -> None:
    """Client side and local cloud load, evaluate and type parameters alike."""
    assert artifacts.load_template is operations.load_template is load_template
    assert artifacts.Evaluator is engine.Evaluator is Evaluator
    assert artifacts.parameter_value is parameters.parameter_value
    assert engine.pseudo_parameters is pseudo_parameters


def test_any_short_tag_reads_as_its_long_form() -> None:
    """Every ``!Name`` is ``Fn::Name`` as cfn-lint reads it; Ref and Condition stay."""
    loaded = load_template(
        "Conditions:\n"
        "  C: !Equals [!FindInMap [M, a, b], !Length [1, 2]]\n"
        "Resources:\n"
        "  Q:\n"
        "    Type: AWS::SQS::Queue\n"
        "    Condition: C\n"
        "    Properties:\n"
        "      A: !Condition C\n"
        "      B: !Cidr [!GetAtt Vpc.CidrBlock, 2, 8]\n"
    )

    assert loaded["Conditions"]["C"] == {
        "Fn::Equals": [{"Fn::FindInMap": ["M", "a", "b"]}, {"Fn::Length": [1, 2]}]
    }
    properties = loaded["Resources"]["Q"]["Properties"]
    assert properties["A"] == {"Condition": "C"}
    assert properties["B"] == {"Fn::Cidr": [{"Fn::GetAtt": ["Vpc", "CidrBlock"]}, 2, 8]}


def test_json_template_loads_as_is() -> None:
    """A JSON body is read as JSON, its long forms untouched."""
    body = (
        '{"Resources": {"T": {"Type": "AWS::SNS::Topic",'
        ' "Properties": {"N": {"Ref": "AWS::Region"}}}}}'
    )

    loaded = load_template(body)

    assert loaded["Resources"]["T"]["Properties"] == {"N": {"Ref": "AWS::Region"}}


def test_load_template_turns_short_tags_into_long_form() -> None:
    """Short-form YAML tags become intrinsic dicts; the version date stays text."""
    template = load_template(
        "AWSTemplateFormatVersion: 2010-09-09\n"
        "Resources:\n"
        "  Q:\n"
        "    Type: AWS::SQS::Queue\n"
        "    Properties:\n"
        "      QueueName: !Sub '${AWS::StackName}-q'\n"
        "      Tags:\n"
        "        - Key: a\n"
        "          Value: !GetAtt Other.Arn\n"
        "        - Key: b\n"
        "          Value: !Select [0, !GetAZs '']\n"
    )
    properties = template["Resources"]["Q"]["Properties"]
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert properties["QueueName"] == {"Fn::Sub": "${AWS::StackName}-q"}
    assert properties["Tags"][0]["Value"] == {"Fn::GetAtt": ["Other", "Arn"]}
    assert properties["Tags"][1]["Value"] == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}


def test_load_template_refuses_template_without_resources() -> None:
    """A template with no Resources is a format error, as in AWS."""
    with pytest.raises(ValueError, match="At least one Resources member"):
        load_template("Parameters: {}\n")


def test_evaluator_resolves_every_intrinsic() -> None:
    """Ref, GetAtt, Sub, Join, If, Equals, Not, And, Or, Select, Split, Base64 work."""
    template = {
        "Conditions": {
            "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
            "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
            "Both": {"Fn::And": [{"Condition": "NotProd"}, {"Fn::Equals": ["a", "a"]}]},
            "Either": {"Fn::Or": [{"Condition": "IsProd"}, {"Condition": "Both"}]},
        },
        "Mappings": {"Sizes": {"dev": {"Type": "t3.micro"}}},
        "Resources": {},
    }
    ev = Evaluator(
        template=template,
        parameters={"Env": "dev", "Names": ["x", "y"]},
        pseudo={"AWS::Region": REGION, "AWS::AccountId": ACCOUNT},
        physical_ids={"Bucket": "b-1"},
        attributes={"Bucket": {"Arn": "arn:aws:s3:::b-1"}},
        get_azs=lambda region: [f"{region}a", f"{region}b"],
    )
    assert ev.resolve(
        {"Fn::Sub": "${Bucket}/${Bucket.Arn}/${AWS::Region}/${!Lit}"}
    ) == (f"b-1/arn:aws:s3:::b-1/{REGION}/${{Lit}}")
    assert (
        ev.resolve({"Fn::Sub": ["${X}-${Env}", {"X": {"Ref": "Bucket"}}]}) == "b-1-dev"
    )
    assert ev.resolve({"Fn::Join": ["-", [{"Ref": "Env"}, "z"]]}) == "dev-z"
    assert ev.resolve({"Fn::If": ["IsProd", "big", "small"]}) == "small"
    assert ev.condition("NotProd") and ev.condition("Both") and ev.condition("Either")
    assert ev.resolve({"Fn::Select": [1, {"Fn::GetAZs": ""}]}) == f"{REGION}b"
    assert ev.resolve({"Fn::Split": [",", "a,b"]}) == ["a", "b"]
    assert ev.resolve({"Fn::Base64": "hi"}) == "aGk="
    assert ev.resolve({"Fn::FindInMap": ["Sizes", "dev", "Type"]}) == "t3.micro"
    assert ev.resolve({"Fn::Select": [0, {"Ref": "Names"}]}) == "x"
    assert ev.resolve({"A": {"Ref": "AWS::NoValue"}, "B": 1}) == {"B": 1}
    assert ev.resolve([{"Ref": "AWS::NoValue"}, 2]) == [2]
    assert ev.ref("AWS::NoValue") is NO_VALUE


def test_references_finds_ref_getatt_and_sub_names() -> None:
    """Dependencies come from Ref, GetAtt and both Fn::Sub forms, not Sub locals."""
    value = {
        "A": {"Ref": "One"},
        "B": {"Fn::GetAtt": "Two.Arn"},
        "C": {"Fn::Sub": "${Three.Arn}-${AWS::Region}-${!Skip}"},
        "D": {"Fn::Sub": ["${Local}", {"Local": {"Ref": "Four"}}]},
    }
    assert references(value) == {"One", "Two", "Three", "Four", "AWS::Region"}


@pytest.mark.parametrize(
    ("region", "partition", "suffix"),
    [
        ("eu-west-2", "aws", "amazonaws.com"),
        ("cn-north-1", "aws-cn", "amazonaws.com.cn"),
        ("us-gov-west-1", "aws-us-gov", "amazonaws.com"),
    ],
)
def test_pseudo_parameters_follow_the_region(
    region: str, partition: str, suffix: str
) -> None:
    """Partition and URL suffix come from the region; StackId only once known."""
    before = pseudo_parameters(ACCOUNT, region, "lab")
    after = pseudo_parameters(ACCOUNT, region, "lab", stack_id="arn:stack/lab/1")

    assert before == {
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": region,
        "AWS::StackName": "lab",
        "AWS::Partition": partition,
        "AWS::URLSuffix": suffix,
        "AWS::NotificationARNs": [],
    }
    assert after == {**before, "AWS::StackId": "arn:stack/lab/1"}


def test_conditions_take_find_in_map_select_and_sub() -> None:
    """Fn::FindInMap, and Fn::Select or Fn::Sub inside Fn::Equals, decide conditions."""
    loaded = load_template(
        "Parameters:\n  Env: {Type: String}\n"
        "Mappings:\n  Sizes: {prod: {Big: 'yes'}, dev: {Big: 'no'}}\n"
        "Conditions:\n"
        "  Big: !Equals [!FindInMap [Sizes, !Ref Env, Big], 'yes']\n"
        "  Second: !Equals [!Select [1, !Split [',', 'a,b']], b]\n"
        "  Named: !Equals [!Sub '${Env}-${AWS::Region}', 'dev-eu-west-2']\n"
        "Resources:\n  T: {Type: AWS::SNS::Topic}\n"
    )
    pseudo = pseudo_parameters(ACCOUNT, REGION, "lab")
    ev = Evaluator(template=loaded, parameters={"Env": "dev"}, pseudo=pseudo)

    assert (ev.condition("Big"), ev.condition("Second"), ev.condition("Named")) == (
        False,
        True,
        True,
    )


def test_unknown_function_is_a_template_error() -> None:
    """A function the evaluator does not know is named, not passed through."""
    ev = Evaluator(template={"Resources": {}}, parameters={}, pseudo={})

    with pytest.raises(TemplateError, match="Fn::Length is not a function"):
        ev.resolve({"Fn::Equals": [{"Fn::Length": [1, 2]}, 2]})
