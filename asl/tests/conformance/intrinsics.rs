//! Intrinsic functions, one case (at least) per argument rule, every
//! expected value taken from the examples and the "Input validation" lists of
//! <https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html>
//! and Appendix B of the ASL specification (<https://states-language.net/#appendix-b>).
//! Where neither states a rule, the case says so and names what it pins.

use super::helpers::*;
use serde_json::{json, Value};

const FAILURE: &str = "States.IntrinsicFailure";

async fn ok(expr: &str, input: Value) -> Value {
    eval_field(expr, input)
        .await
        .unwrap_or_else(|e| panic!("{expr}: {e:?}"))
}

// ---- States.Format ----------------------------------------------------------

#[tokio::test]
async fn format_replaces_each_placeholder_with_the_positional_argument() {
    let input = json!({"name": "Arnav", "template": "Hello, my name is {}."});
    // The page's two examples: a literal template and one read from a path.
    assert_eq!(
        ok(
            "States.Format('Hello, my name is {}.', $.name)",
            input.clone()
        )
        .await,
        "Hello, my name is Arnav."
    );
    assert_eq!(
        ok("States.Format($.template, $.name)", input).await,
        "Hello, my name is Arnav."
    );
    // The spec's example, with a number literal.
    assert_eq!(
        ok(
            "States.Format('Your name is {}, we are in the year {}', $.name, 2020)",
            json!({"name": "Foo", "zebra": "stripe"})
        )
        .await,
        "Your name is Foo, we are in the year 2020"
    );
}

#[tokio::test]
async fn format_renders_values_in_their_natural_string_representation() {
    // Spec: "the Value is the natural string representation; string values
    // are not accompanied by enclosing \" characters".
    assert_eq!(
        ok(
            "States.Format('{} {} {} {} {}', $.s, $.n, $.f, $.b, $.z)",
            json!({"s": "text", "n": 7, "f": 1.5, "b": true, "z": null})
        )
        .await,
        "text 7 1.5 true null"
    );
    // An empty string is a string like any other (issue 19: AWS formats it).
    assert_eq!(
        ok("States.Format('[{}]', $.e)", json!({"e": ""})).await,
        "[]"
    );
}

#[tokio::test]
async fn format_of_objects_and_arrays_follows_step_functions_not_the_spec() {
    // The spec says an argument "MUST NOT be a JSON array or object"; Step
    // Functions formats them (issue 19), as Java renders maps and lists.
    // Not in the developer guide: this pins the recorded rendering.
    assert_eq!(
        ok(
            "States.Format('{} and {}', $.o, $.a)",
            json!({"o": {"Arg1": 1, "Arg2": []}, "a": [1, "x"]})
        )
        .await,
        "{Arg1=1, Arg2=[]} and [1, x]"
    );
}

#[tokio::test]
async fn format_needs_as_many_arguments_as_placeholders() {
    // "There must be as many remaining arguments in the intrinsic function
    // invocation as there are occurrences of {}."
    assert_eq!(
        eval_error("States.Format('{} {}', 1)", json!({})).await,
        FAILURE
    );
    assert_eq!(
        eval_error("States.Format('{}', 1, 2)", json!({})).await,
        FAILURE
    );
    assert_eq!(ok("States.Format('none')", json!({})).await, "none");
}

#[tokio::test]
async fn format_first_argument_must_be_a_string() {
    // "The value of the first argument must be a string": a literal that is
    // not one is rejected when the definition is loaded, a path that selects
    // something else fails at run time.
    assert!(!field_loads("States.Format(1)"));
    assert_eq!(
        eval_error("States.Format($.n)", json!({"n": 1})).await,
        FAILURE
    );
}

#[tokio::test]
async fn reserved_characters_are_escaped_with_a_backslash() {
    // "The literal string \' represents '", "\{ represents {", "\} represents
    // }", "\\ represents \".
    assert_eq!(
        ok(r"States.Format('it\'s \{{}\} \\ done', 'x')", json!({})).await,
        r"it's {x} \ done"
    );
    // An escaped brace pair is no placeholder.
    assert_eq!(ok(r"States.Format('\{\}')", json!({})).await, "{}");
}

// ---- States.StringToJson / States.JsonToString ------------------------------

#[tokio::test]
async fn string_to_json_parses_an_escaped_json_string() {
    assert_eq!(
        ok(
            "States.StringToJson($.escapedJsonString)",
            json!({"escapedJsonString": "{\"foo\": \"bar\"}"})
        )
        .await,
        json!({"foo": "bar"})
    );
    assert_eq!(
        ok(
            "States.StringToJson($.someString)",
            json!({"someString": "{\"number\": 20}", "zebra": "stripe"})
        )
        .await,
        json!({"number": 20})
    );
}

#[tokio::test]
async fn string_to_json_needs_a_string_holding_json() {
    // Spec: "takes a single argument whose Value MUST be a string".
    assert_eq!(
        eval_error("States.StringToJson($.n)", json!({"n": 1})).await,
        FAILURE
    );
    assert_eq!(
        eval_error("States.StringToJson($.s)", json!({"s": "{oops"})).await,
        FAILURE
    );
    // Not in the guide: an empty string gives null, as Step Functions does
    // (issue 19: "fail where AWS succeeds (... empty strings)").
    assert_eq!(
        ok("States.StringToJson($.s)", json!({"s": ""})).await,
        Value::Null
    );
}

#[tokio::test]
async fn json_to_string_returns_json_text() {
    // Spec example: {"name": "Foo", "year": 2020} → "{\"name\":\"Foo\",\"year\":2020}".
    assert_eq!(
        ok(
            "States.JsonToString($.someJson)",
            json!({"someJson": {"name": "Foo", "year": 2020}, "zebra": "stripe"})
        )
        .await,
        "{\"name\":\"Foo\",\"year\":2020}"
    );
    assert_eq!(
        ok(
            "States.JsonToString($.unescapedJson)",
            json!({"unescapedJson": {"foo": "bar"}})
        )
        .await,
        "{\"foo\":\"bar\"}"
    );
}

// ---- Arrays -------------------------------------------------------------------

#[tokio::test]
async fn array_collects_its_arguments_in_order() {
    assert_eq!(
        ok("States.Array($.Id)", json!({"Id": 123456})).await,
        json!([123456])
    );
    assert_eq!(
        ok(
            "States.Array('Foo', 2020, $.someJson, null)",
            json!({"someJson": {"random": "abcdefg"}, "zebra": "stripe"})
        )
        .await,
        json!(["Foo", 2020, {"random": "abcdefg"}, null])
    );
    // "takes zero or more arguments".
    assert_eq!(ok("States.Array()", json!({})).await, json!([]));
}

#[tokio::test]
async fn array_partition_chunks_with_a_shorter_last_chunk() {
    let input = json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]});
    assert_eq!(
        ok("States.ArrayPartition($.inputArray,4)", input.clone()).await,
        json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]])
    );
    // "If you specify a non-integer value for the second argument, Step
    // Functions will round it off to the nearest integer."
    assert_eq!(
        ok("States.ArrayPartition($.inputArray, 3.6)", input.clone()).await,
        json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]])
    );
    // "You must specify a non-zero, positive integer for the second argument."
    for bad in ["0", "-2", "'4'"] {
        assert_eq!(
            eval_error(
                &format!("States.ArrayPartition($.inputArray, {bad})"),
                input.clone()
            )
            .await,
            FAILURE,
            "{bad}"
        );
    }
    // "You must specify an array as the input value for the function's first argument."
    assert_eq!(
        eval_error("States.ArrayPartition($.s, 2)", json!({"s": "abc"})).await,
        FAILURE
    );
}

#[tokio::test]
async fn array_partition_and_contains_refuse_arrays_over_the_payload_limit() {
    // "The input array can't exceed Step Functions' payload size limit of 256 KiB."
    let big = json!({"a": vec!["x".repeat(1000); 300]});
    assert_eq!(
        eval_error("States.ArrayPartition($.a, 10)", big.clone()).await,
        FAILURE
    );
    assert_eq!(
        eval_error("States.ArrayContains($.a, 'x')", big).await,
        FAILURE
    );
}

#[tokio::test]
async fn array_contains_looks_for_any_json_value() {
    let input = json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "lookingFor": 5});
    assert_eq!(
        ok("States.ArrayContains($.inputArray, $.lookingFor)", input).await,
        json!(true)
    );
    // "You must specify a valid JSON object as the second argument": values
    // of any type compare as JSON.
    let objects = json!({"a": [{"k": [1]}, "s"], "v": {"k": [1]}});
    assert_eq!(
        ok("States.ArrayContains($.a, $.v)", objects.clone()).await,
        json!(true)
    );
    assert_eq!(
        ok("States.ArrayContains($.a, 'z')", objects).await,
        json!(false)
    );
    // "You must specify an array as the input value for function's first argument."
    assert_eq!(
        eval_error("States.ArrayContains($.o, 1)", json!({"o": {"a": 1}})).await,
        FAILURE
    );
}

#[tokio::test]
async fn array_range_counts_from_first_to_final_by_the_increment() {
    assert_eq!(
        ok("States.ArrayRange(1, 9, 2)", json!({})).await,
        json!([1, 3, 5, 7, 9])
    );
    // "a non-zero value for the third argument": negative increments count down.
    assert_eq!(
        ok("States.ArrayRange(9, 1, -2)", json!({})).await,
        json!([9, 7, 5, 3, 1])
    );
    // "If you specify a non-integer value for any of the arguments, Step
    // Functions will round it off to the nearest integer."
    assert_eq!(
        ok("States.ArrayRange(0.6, 3.4, 1.2)", json!({})).await,
        json!([1, 2, 3])
    );
    // "You must specify integer values for all of the arguments."
    assert_eq!(
        eval_error("States.ArrayRange('1', 9, 2)", json!({})).await,
        FAILURE
    );
    // "You must specify a non-zero value for the third argument."
    assert_eq!(
        eval_error("States.ArrayRange(1, 9, 0)", json!({})).await,
        FAILURE
    );
}

#[tokio::test]
async fn array_range_holds_at_most_1000_items() {
    // "The newly generated array can't contain more than 1000 items."
    let full = ok("States.ArrayRange(1, 1000, 1)", json!({})).await;
    assert_eq!(full.as_array().map(Vec::len), Some(1000));
    assert_eq!(
        eval_error("States.ArrayRange(1, 1001, 1)", json!({})).await,
        FAILURE
    );
}

#[tokio::test]
async fn array_get_item_returns_the_value_at_the_index() {
    let input = json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "index": 5});
    assert_eq!(
        ok("States.ArrayGetItem($.inputArray, $.index)", input.clone()).await,
        json!(6)
    );
    // Not stated on the page: an index outside the array fails.
    assert_eq!(
        eval_error("States.ArrayGetItem($.inputArray, 9)", input.clone()).await,
        FAILURE
    );
    assert_eq!(
        eval_error("States.ArrayGetItem($.inputArray, -1)", input).await,
        FAILURE
    );
    // "The first argument is an array of values".
    assert_eq!(
        eval_error("States.ArrayGetItem($.s, 0)", json!({"s": "abc"})).await,
        FAILURE
    );
}

#[tokio::test]
async fn array_length_and_unique() {
    let input = json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]});
    assert_eq!(
        ok("States.ArrayLength($.inputArray)", input).await,
        json!(9)
    );
    assert_eq!(
        ok(
            "States.ArrayUnique($.inputArray)",
            json!({"inputArray": [1, 2, 3, 3, 3, 3, 3, 3, 4]})
        )
        .await,
        json!([1, 2, 3, 4])
    );
    // "takes an array, which can be unsorted": first occurrences, in order.
    assert_eq!(
        ok(
            "States.ArrayUnique($.a)",
            json!({"a": [3, "x", 1, 3, {"k": 1}, "x", {"k": 1}]})
        )
        .await,
        json!([3, "x", 1, {"k": 1}])
    );
    assert_eq!(
        eval_error("States.ArrayLength($.s)", json!({"s": "abc"})).await,
        FAILURE
    );
    assert_eq!(
        eval_error("States.ArrayUnique($.s)", json!({"s": 1})).await,
        FAILURE
    );
}

// ---- Encoding and hashing -------------------------------------------------------

#[tokio::test]
async fn base64_encode_and_decode_round_trip() {
    assert_eq!(
        ok(
            "States.Base64Encode($.input)",
            json!({"input": "Data to encode"})
        )
        .await,
        "RGF0YSB0byBlbmNvZGU="
    );
    // The page's decoding example prints "Decoded data" for this input, but
    // the encoding example just above shows it is "Data to encode"'s encoding.
    assert_eq!(
        ok(
            "States.Base64Decode($.base64)",
            json!({"base64": "RGF0YSB0byBlbmNvZGU="})
        )
        .await,
        "Data to encode"
    );
    assert_eq!(ok("States.Base64Encode('')", json!({})).await, "");
    assert_eq!(
        eval_error("States.Base64Decode($.s)", json!({"s": "not base64!"})).await,
        FAILURE
    );
    assert_eq!(
        eval_error("States.Base64Encode($.n)", json!({"n": 1})).await,
        FAILURE
    );
}

#[tokio::test]
async fn base64_arguments_have_at_most_10000_characters() {
    // "a data string of up to 10,000 characters" (both functions).
    let at_limit = json!({"s": "é".repeat(10_000)});
    assert!(eval_field("States.Base64Encode($.s)", at_limit)
        .await
        .is_ok());
    let over = json!({"s": "A".repeat(10_001)});
    assert_eq!(
        eval_error("States.Base64Encode($.s)", over.clone()).await,
        FAILURE
    );
    assert_eq!(eval_error("States.Base64Decode($.s)", over).await, FAILURE);
}

#[tokio::test]
async fn hash_supports_the_five_algorithms() {
    // The page's example is SHA-1 of "input data"; it prints 39 of the
    // digest's 40 hex digits ("aaff4a450a104cd177d28d18d7485e8cae074b7"),
    // the full digest being the one below. The others are those of the
    // same data under each listed algorithm.
    for (algorithm, digest) in [
        ("MD5", "812f45842bc6d66ee14572ce20db8e86"),
        ("SHA-1", "aaff4a450a104cd177d28d18d74485e8cae074b7"),
        ("SHA-256", "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
        ("SHA-384", "d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b87525bdc835ebb27e1fb9e9374a15562"),
        ("SHA-512", "6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4"),
    ] {
        assert_eq!(
            ok("States.Hash($.Data, $.Algorithm)", json!({"Data": "input data", "Algorithm": algorithm})).await,
            digest,
            "{algorithm}"
        );
    }
}

#[tokio::test]
async fn hash_rejects_other_algorithms_and_long_data() {
    // "The hashing algorithm you specify can be any of the following
    // algorithms: MD5, SHA-1, SHA-256, SHA-384, SHA-512".
    for algorithm in ["sha-1", "SHA1", "SHA-224"] {
        assert_eq!(
            eval_error(&format!("States.Hash('x', '{algorithm}')"), json!({})).await,
            FAILURE,
            "{algorithm}"
        );
    }
    // "The data you provide must be an object string containing 10,000
    // characters or less."
    assert_eq!(
        ok(
            "States.Hash($.s, 'SHA-256')",
            json!({"s": "x".repeat(10_000)})
        )
        .await,
        "e4ee97ec252749d2096447e849628d0d7734f51700416eefbb33574bf0b3ee75"
    );
    assert_eq!(
        eval_error(
            "States.Hash($.s, 'SHA-256')",
            json!({"s": "x".repeat(10_001)})
        )
        .await,
        FAILURE
    );
}

// ---- JSON manipulation -----------------------------------------------------------

#[tokio::test]
async fn json_merge_is_shallow_and_the_latter_object_wins() {
    let input = json!({
        "json1": {"a": {"a1": 1, "a2": 2}, "b": 2},
        "json2": {"a": {"a3": 1, "a4": 2}, "c": 3}
    });
    assert_eq!(
        ok("States.JsonMerge($.json1, $.json2, false)", input.clone()).await,
        json!({"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3})
    );
    // "Currently, Step Functions only supports the shallow merging mode;
    // therefore, you must specify the boolean value as false."
    assert_eq!(
        eval_error("States.JsonMerge($.json1, $.json2, true)", input.clone()).await,
        FAILURE
    );
    assert_eq!(
        eval_error("States.JsonMerge($.json1, $.json2, 'false')", input.clone()).await,
        FAILURE
    );
    // "The first two arguments are the JSON objects that you want to merge."
    assert_eq!(
        eval_error("States.JsonMerge($.json1, $.json1.b, false)", input).await,
        FAILURE
    );
}

// ---- Math -------------------------------------------------------------------------

#[tokio::test]
async fn math_random_is_between_start_inclusive_and_end_exclusive() {
    for _ in 0..3 {
        let n = ok(
            "States.MathRandom($.start, $.end)",
            json!({"start": 1, "end": 999}),
        )
        .await
        .as_i64()
        .unwrap();
        assert!((1..999).contains(&n), "{n}");
    }
    // "start number (inclusive) and end number (exclusive)".
    assert_eq!(ok("States.MathRandom(5, 6)", json!({})).await, json!(5));
    // "If you specify a non-integer value for the start number or end number
    // argument, Step Functions will round it off to the nearest integer."
    assert_eq!(ok("States.MathRandom(4.6, 5.5)", json!({})).await, json!(5));
    // "You must specify integer values for the start number and end number arguments."
    assert_eq!(
        eval_error("States.MathRandom('1', 9)", json!({})).await,
        FAILURE
    );
}

#[tokio::test]
async fn math_random_with_the_same_seed_returns_identical_numbers() {
    // "if you use this function with the same seed value, it will return
    // identical numbers" — across executions too.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..5 {
        seen.insert(
            ok("States.MathRandom(0, 1000000, 42)", json!({}))
                .await
                .to_string(),
        );
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[tokio::test]
async fn math_add_sums_integers_in_the_32_bit_range() {
    assert_eq!(
        ok(
            "States.MathAdd($.value1, $.step)",
            json!({"value1": 111, "step": -1})
        )
        .await,
        json!(110)
    );
    // "If you specify a non-integer value for one or both the arguments,
    // Step Functions will round it off to the nearest integer."
    assert_eq!(ok("States.MathAdd(1.4, 2.6)", json!({})).await, json!(4));
    // "You must specify integer values in the range of -2147483648 and 2147483647."
    assert_eq!(
        ok("States.MathAdd(-2147483648, 2147483647)", json!({})).await,
        json!(-1)
    );
    assert_eq!(
        eval_error("States.MathAdd(2147483648, 0)", json!({})).await,
        FAILURE
    );
    assert_eq!(
        eval_error("States.MathAdd('1', 1)", json!({})).await,
        FAILURE
    );
}

// ---- Strings and identifiers -------------------------------------------------------

#[tokio::test]
async fn string_split_splits_on_each_delimiting_character() {
    assert_eq!(
        ok(
            "States.StringSplit($.inputString, $.splitter)",
            json!({"inputString": "1,2,3,4,5", "splitter": ","})
        )
        .await,
        json!(["1", "2", "3", "4", "5"])
    );
    assert_eq!(
        ok(
            "States.StringSplit($.inputString, $.splitter)",
            json!({"inputString": "This.is+a,test=string", "splitter": ".+,="})
        )
        .await,
        json!(["This", "is", "a", "test", "string"])
    );
    // "The first argument is a string and the second argument is the delimiting character".
    assert_eq!(
        eval_error("States.StringSplit($.n, ',')", json!({"n": 1})).await,
        FAILURE
    );
    assert_eq!(
        eval_error("States.StringSplit('a,b', $.n)", json!({"n": 1})).await,
        FAILURE
    );
}

#[tokio::test]
async fn uuid_is_a_version_4_uuid_and_takes_no_arguments() {
    let id = ok("States.UUID()", json!({})).await;
    let parsed = uuid::Uuid::parse_str(id.as_str().unwrap()).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    // "The States.UUID function is called with no arguments specified".
    assert!(!field_loads("States.UUID(1)"));
}

// ---- Calls, arguments and nesting --------------------------------------------------

#[test]
fn every_function_is_known_and_arity_is_checked_when_loading() {
    for call in [
        "States.Format('x')",
        "States.StringToJson('1')",
        "States.JsonToString($.a)",
        "States.Array()",
        "States.ArrayPartition($.a, 1)",
        "States.ArrayContains($.a, 1)",
        "States.ArrayRange(1, 2, 1)",
        "States.ArrayGetItem($.a, 0)",
        "States.ArrayLength($.a)",
        "States.ArrayUnique($.a)",
        "States.Base64Encode('a')",
        "States.Base64Decode('YQ==')",
        "States.Hash('a', 'MD5')",
        "States.JsonMerge($.a, $.b, false)",
        "States.MathRandom(1, 2)",
        "States.MathRandom(1, 2, 3)",
        "States.MathAdd(1, 2)",
        "States.StringSplit('a', ',')",
        "States.UUID()",
    ] {
        assert!(field_loads(call), "{call}");
    }
    for call in [
        "States.Nope()",
        "States.ArrayPartition($.a)",
        "States.ArrayRange(1, 2)",
        "States.JsonMerge($.a, $.b)",
        "States.MathRandom(1)",
        "States.Hash('a')",
        "States.Base64Encode()",
    ] {
        assert!(!field_loads(call), "{call}");
    }
}

#[tokio::test]
async fn up_to_ten_nested_calls_in_a_field() {
    // The page's example, "a field named myArn that includes nine nested
    // intrinsic functions", loads. (As printed it has three placeholders for
    // two arguments, so it would fail the placeholder rule when run.)
    let my_arn = "States.Format('{}.{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 1))";
    assert!(field_loads(my_arn));
    let two = "States.Format('{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 1))";
    assert_eq!(
        ok(
            two,
            json!({"ImageRecipe": {"Arn": "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/my-recipe/1.0.2"}})
        )
        .await,
        "1.0"
    );
    // "You can nest up to 10 intrinsic functions within a field".
    let ten = format!(
        "{}1{}",
        "States.MathAdd(".repeat(9).replace('(', "(1, "),
        ")".repeat(9)
    );
    let ten = format!("States.Array({ten})");
    assert!(field_loads(&ten), "{ten}");
    let eleven = format!("States.Array({ten})");
    assert!(!field_loads(&eleven));
}

#[tokio::test]
async fn arguments_are_literals_paths_context_paths_or_calls() {
    // Paths with characters outside member-name-shorthand use bracket notation.
    assert_eq!(
        ok("States.Array($.abc['def ghi'], $$.Execution.Name, States.Array(), 'q', 1.5, true, null)",
            json!({"abc": {"def ghi": 1}})).await,
        json!([1, "o-1", [], "q", 1.5, true, null])
    );
    // A path that matches nothing is States.Runtime, naming the field.
    let (error, cause) = eval_field("States.Array($.missing)", json!({}))
        .await
        .unwrap_err();
    assert_eq!(error, "States.Runtime");
    assert!(
        cause.contains("'$.missing'") && cause.contains("'r.$'"),
        "{cause}"
    );
}

#[tokio::test]
async fn intrinsic_failures_can_be_caught_in_a_task() {
    // States.IntrinsicFailure is not among the errors States.ALL leaves out
    // (concepts-error-handling), so a Task's Catch handles it.
    let m = machine(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "r", "Parameters": {"x.$": "States.ArrayGetItem($.a, 5)"},
              "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Caught"}], "End": true},
        "Caught": {"Type": "Succeed"}
    }}));
    let tasks = ScriptedTasks::new();
    let r = run(&m, json!({"a": [1]}), &tasks).await;
    assert!(tasks.calls().is_empty());
    let dofs_asl::Next::Succeeded { output } = r.end else {
        panic!("{:?}", r.end)
    };
    assert_eq!(output["err"]["Error"], FAILURE);
}
