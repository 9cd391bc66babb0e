//! Behaviour of the public API: parsing, evaluation semantics, functions and errors.

use redcap_logic::{Context, Date, FieldRef, Logic, MapContext, Value, parse};

fn today() -> Date {
    Date::new(2024, 6, 15).unwrap()
}

fn empty() -> MapContext {
    MapContext::new().with_today(today())
}

#[track_caller]
fn eval_in(src: &str, ctx: &MapContext) -> Value {
    parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}")).eval(ctx).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

#[track_caller]
fn eval(src: &str) -> Value {
    eval_in(src, &empty())
}

#[track_caller]
fn truth_in(src: &str, ctx: &MapContext) -> bool {
    parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}")).is_true(ctx).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

#[track_caller]
fn truth(src: &str) -> bool {
    truth_in(src, &empty())
}

#[track_caller]
fn num(src: &str) -> f64 {
    match eval(src) {
        Value::Number(n) => n,
        other => panic!("{src:?} gave {other:?}, expected a number"),
    }
}

#[track_caller]
fn approx(src: &str, expected: f64) {
    let got = num(src);
    assert!((got - expected).abs() < 1e-9, "{src:?} gave {got}, expected {expected}");
}

#[track_caller]
fn parse_err(src: &str) -> String {
    match parse(src) {
        Ok(l) => panic!("{src:?} parsed as {l}"),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn canonical(src: &str) -> String {
    parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}")).to_string()
}

mod api_doc_examples {
    use super::*;

    #[test]
    fn age_greater_than_30() {
        let logic = parse("[age] > 30").unwrap();
        assert!(logic.is_true(&empty().with("age", "31")).unwrap());
        assert!(!logic.is_true(&empty().with("age", "30")).unwrap());
        assert!(!logic.is_true(&empty().with("age", "9")).unwrap());
        assert!(!logic.is_true(&empty()).unwrap());
    }

    #[test]
    fn name_equals_quoted_string() {
        let logic = parse("[name_first] = 'John Lee'").unwrap();
        assert!(logic.is_true(&empty().with("name_first", "John Lee")).unwrap());
        assert!(!logic.is_true(&empty().with("name_first", "john lee")).unwrap());
        assert!(!logic.is_true(&empty().with("name_first", "John")).unwrap());
    }

    #[test]
    fn form_complete_without_spaces() {
        let logic = parse("[form_complete]='2'").unwrap();
        assert!(logic.is_true(&empty().with("form_complete", "2")).unwrap());
        assert!(!logic.is_true(&empty().with("form_complete", "0")).unwrap());
    }

    #[test]
    fn event_qualified_weight() {
        let logic = parse("[baseline_arm_1][weight] >= 61").unwrap();
        let ctx = empty().with_event("baseline_arm_1", "weight", "61").with("weight", "50");
        assert!(logic.is_true(&ctx).unwrap());
        let ctx = empty().with_event("baseline_arm_1", "weight", "60.5").with("weight", "70");
        assert!(!logic.is_true(&ctx).unwrap());
        assert_eq!(
            logic.fields(),
            vec![FieldRef { event: Some("baseline_arm_1".into()), field: "weight".into(), checkbox_code: None }]
        );
    }
}

mod precedence {
    use super::*;

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(canonical("[a] = 1 or [b] = 2 and [c] = 3"), "(([a] = 1) or (([b] = 2) and ([c] = 3)))");
        let src = "[a] = 1 or [b] = 2 and [c] = 3";
        let ctx = |a: &str, b: &str, c: &str| empty().with("a", a).with("b", b).with("c", c);
        assert!(truth_in(src, &ctx("1", "0", "0")));
        assert!(!truth_in(src, &ctx("0", "2", "0")));
        assert!(truth_in(src, &ctx("0", "2", "3")));
    }

    #[test]
    fn parentheses_override() {
        assert_eq!(canonical("([a] = 1 or [b] = 2) and [c] = 3"), "((([a] = 1) or ([b] = 2)) and ([c] = 3))");
        let src = "([a] = 1 or [b] = 2) and [c] = 3";
        assert!(!truth_in(src, &empty().with("a", "1").with("c", "0")));
        assert!(truth_in(src, &empty().with("a", "1").with("c", "3")));
    }

    #[test]
    fn operator_chains_are_flat_and_evaluated_left_to_right() {
        assert_eq!(canonical("[a] or [b] or [c]"), "([a] or [b] or [c])");
        assert_eq!(canonical("[a] and [b] and [c] or [d]"), "(([a] and [b] and [c]) or [d])");
        assert_eq!(canonical("10 - 4 - 3 * 2 / 3"), "(10 - 4 - (3 * 2 / 3))");
        assert_ne!(parse("([a] or [b]) or [c]").unwrap(), parse("[a] or [b] or [c]").unwrap());
    }

    #[test]
    fn keywords_and_symbols() {
        assert_eq!(canonical("[a] = 1 AND [b] = 2 Or [c] = 3"), canonical("[a] = 1 and [b] = 2 or [c] = 3"));
        assert_eq!(canonical("[a] == 1 && [b] != 2 || [c] <> 3"), "((([a] = 1) and ([b] <> 2)) or ([c] <> 3))");
        assert_eq!(canonical("[a]=1and[b]=2"), "(([a] = 1) and ([b] = 2))");
    }

    #[test]
    fn arithmetic() {
        assert_eq!(canonical("1 + 2 * 3"), "(1 + (2 * 3))");
        assert_eq!(num("1 + 2 * 3"), 7.0);
        assert_eq!(num("(1 + 2) * 3"), 9.0);
        assert_eq!(num("10 - 4 - 3"), 3.0);
        assert_eq!(num("12 / 3 / 2"), 2.0);
        assert_eq!(num("2 ^ 3 ^ 2"), 512.0);
        assert_eq!(num("-2 ^ 2"), -4.0);
        assert_eq!(num("(-2) ^ 2"), 4.0);
        assert_eq!(num("2 ^ -1"), 0.5);
        assert_eq!(num("- -3"), 3.0);
        assert_eq!(num("-2.5 * 2"), -5.0);
        assert_eq!(num(".5 + 5."), 5.5);
    }

    #[test]
    fn arithmetic_binds_tighter_than_comparison() {
        assert_eq!(canonical("[a] + 1 > [b] * 2"), "(([a] + 1) > ([b] * 2))");
        assert!(truth_in("[a] + 1 > [b] * 2", &empty().with("a", "6").with("b", "3")));
        assert!(!truth_in("[a] + 1 > [b] * 2", &empty().with("a", "5").with("b", "3")));
    }

    #[test]
    fn not_binds_looser_than_comparison_and_tighter_than_and() {
        assert_eq!(canonical("not [a] = 1"), "(not ([a] = 1))");
        assert_eq!(canonical("![a] = 1"), "(not ([a] = 1))");
        assert_eq!(canonical("not [a] = 1 and [b] = 1"), "((not ([a] = 1)) and ([b] = 1))");
        assert_eq!(canonical("NOT not [a]"), "(not (not [a]))");
    }

    #[test]
    fn canonical_form_round_trips() {
        for src in [
            "[a] = 1 or [b] = 2 and [c] = 3",
            "-2 ^ 2 + (-2) ^ 2",
            "not ([a] = 1 or [b] <> 'x')",
            "if([a] > 10, 'big', if([a] > 5, \"it's medium\", ''))",
            "datediff([ev][dob], 'today', 'y', 'ymd', true) >= 18",
            "[race(2)] = '1' and [e1][race(-1)] = '0'",
            "sum([a], 2.5, -3) / mean(1, 2) * 1000000",
            "true or FALSE",
        ] {
            let once = parse(src).unwrap();
            let twice = parse(&once.to_string()).unwrap_or_else(|e| panic!("{once}: {e}"));
            assert_eq!(once, twice, "{src}");
        }
    }

    #[test]
    fn from_str() {
        let logic: Logic = "[age] > 30".parse().unwrap();
        assert_eq!(logic, parse("[age]>30").unwrap());
        assert!("[age] >".parse::<Logic>().is_err());
    }
}

mod literals_and_fields {
    use super::*;

    #[test]
    fn both_quote_styles() {
        let ctx = empty().with("name_first", "John Lee").with("q", "it's");
        assert!(truth_in("[name_first] = 'John Lee'", &ctx));
        assert!(truth_in("[name_first] = \"John Lee\"", &ctx));
        assert!(truth_in("[q] = \"it's\"", &ctx));
        assert!(truth_in("'say \"hi\"' = concat('say ', '\"hi\"')", &ctx));
        assert_eq!(eval("'John Lee'"), Value::Text("John Lee".into()));
        assert_eq!(eval("\"2\""), Value::Text("2".into()));
    }

    #[test]
    fn empty_string_literals_are_blank() {
        assert_eq!(eval("''"), Value::Blank);
        assert_eq!(eval("\"\""), Value::Blank);
        assert!(truth("'' = \"\""));
    }

    #[test]
    fn booleans() {
        assert_eq!(eval("true"), Value::Bool(true));
        assert_eq!(eval("False"), Value::Bool(false));
        assert!(truth("true = 1"));
        assert!(truth("false = '0'"));
    }

    #[test]
    fn event_field_reference() {
        let ctx = empty()
            .with_event("baseline_arm_1", "weight", "70")
            .with_event("week_4_arm_1", "weight", "65")
            .with("weight", "99");
        assert!(truth_in("[baseline_arm_1][weight] - [week_4_arm_1][weight] = 5", &ctx));
        assert!(truth_in("[weight] = 99", &ctx));
        assert!(truth_in("[week_8_arm_1][weight] = ''", &ctx));
        assert_eq!(eval_in("[baseline_arm_1][weight]", &ctx), Value::Text("70".into()));
    }

    #[test]
    fn event_names_may_start_with_a_digit() {
        let ctx = empty().with_event("1_month_arm_1", "hb", "12");
        assert!(truth_in("[1_month_arm_1][hb] = 12", &ctx));
    }

    #[test]
    fn checkbox_options() {
        let ctx = empty().with("race___2", "1").with("race___3", "0");
        assert!(truth_in("[race(2)] = '1'", &ctx));
        assert!(truth_in("[race(2)] = 1", &ctx));
        assert!(truth_in("[race(3)] = '0'", &ctx));
        assert!(truth_in("[race(2)]", &ctx));
        assert!(!truth_in("[race(3)]", &ctx));
        assert!(truth_in("[race(2)] = '1' and not [race(3)] = '1'", &ctx));
    }

    #[test]
    fn unset_checkbox_option_reads_as_unchecked_not_blank() {
        assert_eq!(eval("[race(4)]"), Value::Text("0".into()));
        assert!(truth("[race(4)] = '0'"));
        assert!(!truth("[race(4)] = ''"));
        assert!(!truth("isblankormissingcode([race(4)])"));
    }

    #[test]
    fn checkbox_in_event_and_odd_codes() {
        let ctx = empty().with_event("visit_1_arm_1", "race___2", "1").with("sym____1", "1").with("sym___a_b", "1");
        assert!(truth_in("[visit_1_arm_1][race(2)] = '1'", &ctx));
        assert!(truth_in("[race(2)] = '0'", &ctx));
        assert!(truth_in("[sym(-1)] = 1", &ctx));
        assert!(truth_in("[sym(A.B)] = 1", &ctx));
    }

    #[test]
    fn field_ref_helpers() {
        let r = FieldRef::new("race").with_event("visit_1_arm_1").with_checkbox_code("2");
        assert_eq!(r.to_string(), "[visit_1_arm_1][race(2)]");
        assert_eq!(r.column_name(), "race___2");
        assert_eq!(FieldRef::new("age").to_string(), "[age]");
        assert_eq!(FieldRef::new("age").column_name(), "age");
        assert_eq!(FieldRef::new("sym").with_checkbox_code("-1").column_name(), "sym____1");
    }

    #[test]
    fn whitespace_and_newlines_are_insignificant() {
        assert!(truth_in("  [age]\n>\t30\r\n", &empty().with("age", "40")));
    }
}

mod fields_listing {
    use super::*;

    #[test]
    fn lists_every_reference_once_in_order() {
        let logic = parse(
            "[a] = 1 and [ev][b] > 2 or [c(3)] = '1' or [a] = 2 \
             or datediff([dob], 'today', 'y') > 1 or if([x], [ev][b], [ev][c(3)])",
        )
        .unwrap();
        assert_eq!(
            logic.fields(),
            vec![
                FieldRef::new("a"),
                FieldRef::new("b").with_event("ev"),
                FieldRef::new("c").with_checkbox_code("3"),
                FieldRef::new("dob"),
                FieldRef::new("x"),
                FieldRef::new("c").with_event("ev").with_checkbox_code("3"),
            ]
        );
    }

    #[test]
    fn no_fields() {
        assert!(parse("1 + 1 = 2").unwrap().fields().is_empty());
    }
}

mod comparisons {
    use super::*;

    #[test]
    fn numeric_when_both_sides_look_numeric() {
        let ctx = empty().with("a", "10").with("b", "9").with("c", "1.0").with("d", " 2.50 ");
        assert!(truth_in("[a] > [b]", &ctx));
        assert!(truth("'10' > '9'"));
        assert!(truth("10 > 9"));
        assert!(truth_in("[c] = 1", &ctx));
        assert!(truth_in("[c] = '1'", &ctx));
        assert!(truth("'01' = '1'"));
        assert!(truth_in("[d] = 2.5", &ctx));
        assert!(truth("'1e3' = 1000"));
        assert!(truth("-1 < '0'"));
    }

    #[test]
    fn text_when_either_side_is_not_numeric() {
        assert!(!truth("'10a' > '9'"));
        assert!(truth("'abc' < 'abd'"));
        assert!(truth("'B' < 'a'"));
        assert!(!truth("'John' = 'john'"));
        assert!(truth("'2024-01-31' < '2024-02-01'"));
        assert!(!truth("[d] >= '2024-01-01'"));
        let ctx = empty().with("d", "2024-03-05");
        assert!(truth_in("[d] >= '2024-01-01' and [d] <= '2024-12-31'", &ctx));
        assert!(truth("'abc' <> 1"));
    }

    #[test]
    fn all_operators() {
        for (src, expected) in [
            ("2 = 2", true),
            ("2 == 2", true),
            ("2 <> 2", false),
            ("2 != 3", true),
            ("2 < 3", true),
            ("3 < 3", false),
            ("3 <= 3", true),
            ("4 <= 3", false),
            ("4 > 3", true),
            ("3 > 3", false),
            ("3 >= 3", true),
            ("2 >= 3", false),
        ] {
            assert_eq!(truth(src), expected, "{src}");
        }
    }

    #[test]
    fn blank_equals_empty_string() {
        let ctx = empty().with("empty", "");
        for src in ["[age] = ''", "[age] = \"\"", "'' = [age]", "[empty] = ''", "[age] = [other]"] {
            assert!(truth_in(src, &ctx), "{src}");
        }
        assert!(!truth_in("[age] <> ''", &ctx));
        assert!(truth_in("[age] <> ''", &empty().with("age", "0")));
        assert!(!truth_in("[age] = ''", &empty().with("age", "0")));
    }

    #[test]
    fn blank_in_ordered_comparison_is_false() {
        for src in ["[age] > 30", "[age] < 30", "[age] >= 0", "[age] <= 0", "30 > [age]", "[d] < '2024-01-01'"] {
            assert!(!truth(src), "{src}");
        }
        assert!(!truth("'' <= ''"));
        assert!(!truth("[name] > ''"));
    }

    #[test]
    fn blank_against_non_blank() {
        assert!(!truth("[age] = 30"));
        assert!(!truth("[age] = 0"));
        assert!(!truth("[age] = '0'"));
        assert!(truth("[age] <> 30"));
        assert!(truth("30 <> [age]"));
        assert!(truth("[age] != 'x'"));
    }

    #[test]
    fn comparison_results_are_booleans() {
        assert_eq!(eval("1 = 1"), Value::Bool(true));
        assert_eq!(eval("[a] > 1"), Value::Bool(false));
        assert!(truth("(1 = 1) = true"));
        assert!(truth("(1 = 1) + (2 = 2) = 2"));
    }
}

mod booleans {
    use super::*;

    #[test]
    fn not_and_bang() {
        let ctx = empty().with("a", "1");
        assert!(!truth_in("not [a] = 1", &ctx));
        assert!(truth_in("not [a] = 2", &ctx));
        assert!(!truth_in("![a] = 1", &ctx));
        assert!(truth_in("not not [a] = 1", &ctx));
        assert!(truth_in("not ([a] = 2 or [b] = 2)", &ctx));
        assert!(truth("not [a]"));
        assert_eq!(eval("not 0"), Value::Bool(true));
    }

    #[test]
    fn truthiness_of_values() {
        let ctx = empty().with("yes", "1").with("no", "0").with("txt", "abc").with("zero", "0.0");
        assert!(truth_in("[yes]", &ctx));
        assert!(!truth_in("[no]", &ctx));
        assert!(truth_in("[txt]", &ctx));
        assert!(!truth_in("[zero]", &ctx));
        assert!(!truth_in("[missing]", &ctx));
        assert!(truth_in("[yes] and [txt]", &ctx));
        assert!(!truth_in("[yes] and [no]", &ctx));
        assert!(truth_in("[no] or [yes]", &ctx));
        assert_eq!(eval_in("[yes] and [txt]", &ctx), Value::Bool(true));
    }

    #[test]
    fn short_circuit_skips_errors() {
        // The right-hand side would fail (the unit comes from a field and is invalid).
        let ctx = empty().with("u", "weeks").with("d", "2024-01-01");
        let bad = "datediff([d], [d], [u]) > 1";
        assert!(parse(bad).unwrap().eval(&ctx).is_err());
        assert!(!truth_in(&format!("1 = 2 and {bad}"), &ctx));
        assert!(truth_in(&format!("1 = 1 or {bad}"), &ctx));
        assert!(truth_in(&format!("if(true, 1, {bad})"), &ctx));
    }
}

mod arithmetic {
    use super::*;

    #[test]
    fn numeric_text_fields() {
        let ctx = empty().with("h", "1.80").with("w", "81");
        let bmi = eval_in("round([w] / ([h] * [h]), 1)", &ctx);
        assert_eq!(bmi, Value::Number(25.0));
        assert!(truth_in("[w] / [h] ^ 2 >= 25", &ctx));
    }

    #[test]
    fn blank_or_text_operands_give_blank() {
        assert_eq!(eval("[a] + 1"), Value::Blank);
        assert_eq!(eval("-[a]"), Value::Blank);
        assert_eq!(eval("'abc' * 2"), Value::Blank);
        assert!(!truth("[a] + 1 > 0"));
        assert!(!truth("[a] + 1 < 0"));
        assert!(truth("[a] + 1 <> 5"));
        assert!(truth("[a] + 1 = ''"));
    }

    #[test]
    fn division_by_zero_and_nan_give_blank() {
        assert_eq!(eval("1 / 0"), Value::Blank);
        assert_eq!(eval("0 / 0"), Value::Blank);
        assert_eq!(eval("(-8) ^ 0.5"), Value::Blank);
        assert!(!truth("1 / 0 > 0"));
    }

    #[test]
    fn results_display_like_redcap() {
        assert_eq!(eval("6 / 2").to_string(), "3");
        assert_eq!(eval("1 / 4").to_string(), "0.25");
        assert_eq!(eval("0 - 1.5").to_string(), "-1.5");
        assert_eq!(eval("1 = 1").to_string(), "1");
        assert_eq!(eval("[x]").to_string(), "");
    }
}

mod functions {
    use super::*;

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(num("SUM(1, 2)"), 3.0);
        assert_eq!(num("DateDiff('2024-01-01', '2024-01-02', 'd')"), 1.0);
        assert_eq!(canonical("ROUND(1.5)"), "round(1.5)");
    }

    #[test]
    fn datediff_units() {
        let d = "'2020-01-01', '2021-01-01'";
        approx(&format!("datediff({d}, 'd')"), 366.0);
        approx(&format!("datediff({d}, 'y')"), 366.0 / 365.2425);
        approx(&format!("datediff({d}, 'M')"), 366.0 / 30.44);
        approx(&format!("datediff({d}, 'h')"), 366.0 * 24.0);
        approx(&format!("datediff({d}, 'm')"), 366.0 * 24.0 * 60.0);
        approx(&format!("datediff({d}, 's')"), 366.0 * 86_400.0);
    }

    #[test]
    fn datediff_with_times() {
        approx("datediff('2024-03-01 08:00', '2024-03-01 10:30', 'h')", 2.5);
        approx("datediff('2024-03-01 08:00', '2024-03-01 10:30', 'm')", 150.0);
        approx("datediff('2024-03-01 10:30:00', '2024-03-01 10:30:15', 's')", 15.0);
        approx("datediff('2024-03-01 12:00', '2024-03-02', 'd')", 0.5);
        approx("datediff('2024-02-28 23:00', '2024-03-01 01:00', 'h')", 26.0);
    }

    #[test]
    fn datediff_from_fields() {
        let ctx = empty().with("dob", "1990-05-20").with("visit", "2020-05-20");
        let years = eval_in("datediff([dob], [visit], 'y')", &ctx);
        let Value::Number(y) = years else { panic!("{years:?}") };
        assert!((y - 10958.0 / 365.2425).abs() < 1e-9, "{y}");
        assert!(truth_in("rounddown(datediff([dob], [visit], 'y')) = 30", &ctx));
        assert!(truth_in("datediff([dob], [visit], 'd') = 10958", &ctx));
    }

    #[test]
    fn datediff_signed_and_unsigned() {
        assert_eq!(num("datediff('2021-01-01', '2020-01-01', 'd')"), 366.0);
        assert_eq!(num("datediff('2021-01-01', '2020-01-01', 'd', true)"), -366.0);
        assert_eq!(num("datediff('2020-01-01', '2021-01-01', 'd', true)"), 366.0);
        assert_eq!(num("datediff('2021-01-01', '2020-01-01', 'd', 'ymd', true)"), -366.0);
        assert_eq!(num("datediff('2021-01-01', '2020-01-01', 'd', 'ymd', false)"), 366.0);
        assert_eq!(num("datediff('2021-01-01', '2020-01-01', 'd', false)"), 366.0);
        assert_eq!(num("datediff('2021-01-01', '2020-01-01', 'd', 'ymd', 'true')"), -366.0);
        assert_eq!(num("datediff('2021-01-01', '2020-01-01', 'd', 'ymd')"), 366.0);
    }

    #[test]
    fn datediff_date_formats() {
        assert_eq!(num("datediff('01-31-2024', '02-01-2024', 'd', 'mdy')"), 1.0);
        assert_eq!(num("datediff('31/01/2024', '01/02/2024', 'd', 'dmy')"), 1.0);
        assert_eq!(num("datediff('2024-01-31', '02-01-2024', 'd', 'MDY')"), 1.0);
        // Without the format, M-D-Y values are not dates.
        assert_eq!(eval("datediff('01-31-2024', '02-01-2024', 'd')"), Value::Blank);
    }

    #[test]
    fn datediff_today_comes_from_the_context() {
        let ctx = empty().with("dob", "2000-06-15").with("appt", "2024-06-20");
        assert!(truth_in("rounddown(datediff([dob], 'today', 'y')) = 24", &ctx));
        assert!(truth_in("datediff('today', [appt], 'd') = 5", &ctx));
        assert!(truth_in("datediff('TODAY', [appt], 'd', true) = 5", &ctx));
        assert!(truth_in("datediff([appt], \"today\", 'd', true) = -5", &ctx));
        let later = ctx.clone().with_today(Date::new(2024, 6, 14).unwrap());
        assert!(truth_in("rounddown(datediff([dob], 'today', 'y')) = 23", &later));
    }

    #[test]
    fn datediff_blank_or_invalid_dates_give_blank() {
        assert_eq!(eval("datediff([dob], 'today', 'y')"), Value::Blank);
        assert!(!truth("datediff([dob], 'today', 'y') > 5"));
        assert!(!truth("datediff([dob], 'today', 'y') < 5"));
        assert_eq!(eval("datediff('2024-02-30', '2024-03-01', 'd')"), Value::Blank);
        assert_eq!(eval("datediff('yesterday', '2024-03-01', 'd')"), Value::Blank);
        assert_eq!(eval("datediff('2024-03-01 25:00', '2024-03-01', 'h')"), Value::Blank);
    }

    #[test]
    fn datediff_dynamic_unit() {
        let ctx = empty().with("u", "d");
        assert_eq!(eval_in("datediff('2024-01-01', '2024-01-03', [u])", &ctx), Value::Number(2.0));
        let err =
            parse("datediff('2024-01-01', '2024-01-03', [u])").unwrap().eval(&empty().with("u", "D")).unwrap_err();
        assert_eq!(err.to_string(), "invalid datediff unit 'D' (expected \"y\", \"M\", \"d\", \"h\", \"m\" or \"s\")");
        let err = parse("datediff('2024-01-01', '2024-01-03', 'd', [f])").unwrap().eval(&empty()).unwrap_err();
        assert_eq!(err.message(), "invalid datediff option ''");
    }

    #[test]
    fn sum_ignores_blanks() {
        let ctx = empty().with("a", "1").with("c", "2.5");
        assert_eq!(eval_in("sum([a], [b], [c])", &ctx), Value::Number(3.5));
        assert_eq!(eval_in("sum([a], [b], 'x', 4)", &ctx), Value::Number(5.0));
        assert_eq!(eval("sum([x], [y])"), Value::Blank);
        assert_eq!(num("sum(-1, 1)"), 0.0);
        // Contrast with `+`, which is blank when any operand is.
        assert_eq!(eval_in("[a] + [b] + [c]", &ctx), Value::Blank);
    }

    #[test]
    fn min_max_mean_median() {
        let ctx = empty().with("a", "4").with("b", "").with("c", "10").with("d", "-2");
        assert_eq!(eval_in("min([a], [b], [c], [d])", &ctx), Value::Number(-2.0));
        assert_eq!(eval_in("max([a], [b], [c], [d])", &ctx), Value::Number(10.0));
        assert_eq!(eval_in("mean([a], [b], [c], [d])", &ctx), Value::Number(4.0));
        assert_eq!(eval_in("median([a], [b], [c], [d])", &ctx), Value::Number(4.0));
        assert_eq!(num("median(5, 1, 3, 2)"), 2.5);
        assert_eq!(num("mean(1, 2)"), 1.5);
        assert_eq!(num("min(7)"), 7.0);
        for f in ["min", "max", "mean", "median"] {
            assert_eq!(eval(&format!("{f}([x], '')")), Value::Blank, "{f}");
        }
    }

    #[test]
    fn if_and_nesting() {
        let size = "if([a] > 10, 'big', if([a] > 5, 'medium', 'small'))";
        assert_eq!(eval_in(size, &empty().with("a", "11")), Value::Text("big".into()));
        assert_eq!(eval_in(size, &empty().with("a", "6")), Value::Text("medium".into()));
        assert_eq!(eval_in(size, &empty().with("a", "5")), Value::Text("small".into()));
        // Blank is not > 5, so it falls through to the last branch.
        assert_eq!(eval_in(size, &empty()), Value::Text("small".into()));
        assert!(truth_in("if([sex] = '1', [preg] = '0', true)", &empty().with("sex", "1").with("preg", "0")));
        assert!(!truth_in("if([sex] = '1', [preg] = '0', true)", &empty().with("sex", "1").with("preg", "1")));
        assert_eq!(num("if(1, 2, 3) + if('', 2, 3)"), 5.0);
        assert_eq!(eval("if(false, 1, '')"), Value::Blank);
    }

    #[test]
    fn isblankormissingcode() {
        let ctx = empty().with_missing_codes(["NA", "UNK"]).with("a", "NA").with("b", "5").with("c", "na");
        assert!(truth_in("isblankormissingcode([x])", &ctx));
        assert!(truth_in("isblankormissingcode([a])", &ctx));
        assert!(!truth_in("isblankormissingcode([b])", &ctx));
        assert!(!truth_in("isblankormissingcode([c])", &ctx));
        assert!(truth_in("not isblankormissingcode([b]) and [b] > 3", &ctx));
        // Without missing-data codes, `NA` is an ordinary value.
        assert!(!truth_in("isblankormissingcode([a])", &empty().with("a", "NA")));
        // A missing-data code is not blank for `=`.
        assert!(!truth_in("[a] = ''", &ctx));
    }

    #[test]
    fn round_family() {
        assert_eq!(num("round(2.71828, 2)"), 2.72);
        assert_eq!(num("round(2.5)"), 3.0);
        assert_eq!(num("round(-2.5)"), -3.0);
        assert_eq!(num("round(2.4999)"), 2.0);
        assert_eq!(num("round(1.005, 2)"), 1.01);
        assert_eq!(num("round(1234.5678, -2)"), 1200.0);
        assert_eq!(num("round(1250, -2)"), 1300.0);
        assert_eq!(num("round('7.75', 1)"), 7.8);
        assert_eq!(num("roundup(1.21, 1)"), 1.3);
        assert_eq!(num("roundup(-1.21, 1)"), -1.3);
        assert_eq!(num("roundup(1.1, 1)"), 1.1);
        assert_eq!(num("roundup(2.0001)"), 3.0);
        assert_eq!(num("rounddown(1.29, 1)"), 1.2);
        assert_eq!(num("rounddown(-1.29, 1)"), -1.2);
        assert_eq!(num("rounddown(2.9999)"), 2.0);
        assert_eq!(num("round(0.1 + 0.2, 20)"), 0.1 + 0.2);
        assert_eq!(eval("round([x], 2)"), Value::Blank);
        assert_eq!(eval("roundup('abc')"), Value::Blank);
        assert_eq!(eval("rounddown(1.5, [x])"), Value::Blank);
    }

    #[test]
    fn abs_and_sqrt() {
        assert_eq!(num("abs(-3)"), 3.0);
        assert_eq!(num("abs('2.5')"), 2.5);
        assert_eq!(eval("abs([x])"), Value::Blank);
        assert_eq!(num("sqrt(16)"), 4.0);
        assert_eq!(eval("sqrt(-1)"), Value::Blank);
    }

    #[test]
    fn text_predicates_are_case_insensitive() {
        let ctx = empty().with("name", "John Lee");
        assert!(truth_in("contains([name], 'lee')", &ctx));
        assert!(truth_in("contains([name], \"JOHN L\")", &ctx));
        assert!(!truth_in("contains([name], 'smith')", &ctx));
        assert!(truth_in("not_contain([name], 'smith')", &ctx));
        assert!(!truth_in("not_contain([name], 'LEE')", &ctx));
        assert!(truth_in("starts_with([name], 'john')", &ctx));
        assert!(!truth_in("starts_with([name], 'lee')", &ctx));
        assert!(truth_in("ends_with([name], 'LEE')", &ctx));
        assert!(!truth_in("contains([other], 'x')", &ctx));
        assert!(truth_in("contains([name], '')", &ctx));
        assert!(truth("contains(12345, 34)"));
    }

    #[test]
    fn number_predicates() {
        assert!(truth("isnumber('12.5')"));
        assert!(truth("isnumber(-3)"));
        assert!(truth("isnumber(' 7 ')"));
        assert!(!truth("isnumber('abc')"));
        assert!(!truth("isnumber([x])"));
        assert!(!truth("isnumber(true)"));
        assert!(truth("isinteger('12')"));
        assert!(truth("isinteger('-12')"));
        assert!(truth("isinteger(6 / 3)"));
        assert!(!truth("isinteger('12.5')"));
        assert!(!truth("isinteger('12.0')"));
        assert!(!truth("isinteger(7 / 2)"));
        assert!(!truth("isinteger([x])"));
    }

    #[test]
    fn text_functions() {
        let ctx = empty().with("name", "  Ana María ");
        assert_eq!(eval_in("length([name])", &ctx), Value::Number(12.0));
        assert_eq!(eval("length([x])"), Value::Number(0.0));
        assert_eq!(eval_in("trim([name])", &ctx), Value::Text("Ana María".into()));
        assert_eq!(eval_in("upper(trim([name]))", &ctx), Value::Text("ANA MARÍA".into()));
        assert_eq!(eval_in("lower(trim([name]))", &ctx), Value::Text("ana maría".into()));
        assert_eq!(eval("concat('a', 1, [x], 'b')"), Value::Text("a1b".into()));
        assert_eq!(eval("concat([x], '')"), Value::Blank);
        assert_eq!(eval("left('abcdef', 2)"), Value::Text("ab".into()));
        assert_eq!(eval("right('abcdef', 2)"), Value::Text("ef".into()));
        assert_eq!(eval("right('ab', 5)"), Value::Text("ab".into()));
        assert_eq!(eval("left('abc', 0)"), Value::Blank);
        assert_eq!(eval("left('abc', [x])"), Value::Blank);
        assert_eq!(eval("mid('abcdef', 2, 3)"), Value::Text("bcd".into()));
        assert_eq!(eval_in("mid(trim([name]), 5, 5)", &ctx), Value::Text("María".into()));
        assert_eq!(eval("mid('abc', 0, 1)"), Value::Blank);
    }

    #[test]
    fn date_parts() {
        let ctx = empty().with("d", "2023-11-05 14:30");
        assert_eq!(eval_in("year([d])", &ctx), Value::Number(2023.0));
        assert_eq!(eval_in("month([d])", &ctx), Value::Number(11.0));
        assert_eq!(eval_in("day([d])", &ctx), Value::Number(5.0));
        assert_eq!(eval("year('today')"), Value::Number(2024.0));
        assert_eq!(eval("month('today')"), Value::Number(6.0));
        assert_eq!(eval("day([x])"), Value::Blank);
    }
}

mod errors {
    use super::*;

    #[test]
    fn malformed_inputs_from_the_brief() {
        assert_eq!(parse_err("[age] >"), "unexpected end of input at column 8");
        assert_eq!(parse_err("(([a] = 1)"), "unclosed '(' at column 1");
        assert_eq!(parse_err("[age] = 'x"), "unterminated string at column 9");
        assert_eq!(parse_err("foo(1)"), "unsupported function `foo` at column 1");
    }

    #[test]
    fn error_accessors() {
        let e = parse("[a] = 1 and bar([b])").unwrap_err();
        assert_eq!(e.message(), "unsupported function `bar`");
        assert_eq!(e.column(), 13);
        assert_eq!(e.line(), 1);
        assert_eq!(e.offset(), 12);
        assert_eq!(e.to_string(), "unsupported function `bar` at column 13");
        let _: &dyn std::error::Error = &e;
    }

    #[test]
    fn unexpected_tokens() {
        assert_eq!(parse_err("[a] = 1)"), "unexpected ')' at column 8");
        assert_eq!(parse_err("()"), "unexpected ')' at column 2");
        assert_eq!(parse_err(""), "unexpected end of input at column 1");
        assert_eq!(parse_err("   "), "unexpected end of input at column 4");
        assert_eq!(parse_err("[a] = 1 and"), "unexpected end of input at column 12");
        assert_eq!(parse_err("and [a] = 1"), "unexpected keyword `and` at column 1");
        assert_eq!(parse_err("[a] = (1 2)"), "unexpected number `2` at column 10");
        assert_eq!(parse_err("[a] = 1 [b] = 2"), "unexpected field reference `[b]` at column 9");
        assert_eq!(parse_err("[a] = 'x' 'y'"), "unexpected string 'y' at column 11");
        assert_eq!(
            parse_err("[a] = John"),
            "unexpected identifier `John` (quote text values, e.g. 'John') at column 7"
        );
        assert_eq!(
            parse_err("[a] = today"),
            "unexpected identifier `today` (quote text values, e.g. 'today') at column 7"
        );
        assert_eq!(parse_err("1 + + 2"), "unexpected '+' at column 5");
        assert_eq!(parse_err("1 + !2"), "unexpected '!' at column 5");
        assert_eq!(parse_err("[a] =< 2"), "unexpected '<' at column 6");
    }

    #[test]
    fn bad_characters() {
        assert_eq!(parse_err("[a] = 1 # x"), "unexpected character '#' at column 9");
        assert_eq!(parse_err("[a] & [b]"), "unexpected '&' (use `and` or `&&`) at column 5");
        assert_eq!(parse_err("[a] | [b]"), "unexpected '|' (use `or` or `||`) at column 5");
        assert_eq!(parse_err("[a]] = 1"), "unexpected ']' at column 4");
        assert_eq!(parse_err("[a] = ."), "unexpected '.' at column 7");
    }

    #[test]
    fn chained_comparison() {
        assert_eq!(parse_err("[a] = 1 = 2"), "comparisons cannot be chained (combine them with `and`) at column 9");
        assert_eq!(parse_err("1 < [a] < 3"), "comparisons cannot be chained (combine them with `and`) at column 9");
    }

    #[test]
    fn unclosed_parentheses() {
        assert_eq!(parse_err("sum(1, 2"), "unclosed '(' at column 4");
        assert_eq!(parse_err("([a] = 1 and ([b] = 2)"), "unclosed '(' at column 1");
        assert_eq!(parse_err("[a] = 1 and ([b] = 2 or [c] = 3"), "unclosed '(' at column 13");
        assert_eq!(parse_err("sum(1,)"), "unexpected ')' at column 7");
        assert_eq!(parse_err("sum(1 2)"), "unexpected number `2` at column 7");
    }

    #[test]
    fn bad_field_references() {
        assert_eq!(parse_err("[age"), "unterminated field reference at column 1");
        assert_eq!(parse_err("[a] = 1 or [b"), "unterminated field reference at column 12");
        assert_eq!(parse_err("[age = 1 and [b] = 2"), "unterminated field reference at column 1");
        assert_eq!(parse_err("[] = 1"), "invalid field reference `[]` at column 1");
        assert_eq!(parse_err("[2] = 1"), "invalid field reference `[2]` at column 1");
        assert_eq!(parse_err("[my field] = 1"), "invalid field reference `[my field]` at column 1");
        assert_eq!(parse_err("[age(] = 1"), "invalid field reference `[age(]` at column 1");
        assert_eq!(parse_err("[race()] = 1"), "invalid field reference `[race()]` at column 1");
        assert_eq!(parse_err("[ev(1)][f] = 1"), "invalid event name `[ev(1)]` at column 1");
        assert_eq!(parse_err("[ev][f g] = 1"), "invalid field reference `[f g]` at column 5");
        assert_eq!(parse_err("[a][b][c] = 1"), "too many bracketed parts in field reference at column 1");
    }

    #[test]
    fn smart_variables_and_instances_are_rejected() {
        assert_eq!(parse_err("[user-name] = 'x'"), "unsupported smart variable `[user-name]` at column 1");
        assert_eq!(parse_err("[event-name][age] = 1"), "unsupported smart variable `[event-name]` at column 1");
        assert_eq!(parse_err("[a] = [record-name]"), "unsupported smart variable `[record-name]` at column 7");
        assert_eq!(parse_err("[race:checked] = 1"), "unsupported smart variable `[race:checked]` at column 1");
        assert_eq!(parse_err("[age][2] > 1"), "repeat instance `[2]` is not supported at column 6");
        assert_eq!(parse_err("[ev][age][12] > 1"), "repeat instance `[12]` is not supported at column 10");
    }

    #[test]
    fn unsupported_functions_and_arity() {
        assert_eq!(parse_err("[a] = 1 and bar([b])"), "unsupported function `bar` at column 13");
        assert_eq!(parse_err("stdev(1, 2)"), "unsupported function `stdev` at column 1");
        assert_eq!(parse_err("SomeFunc()"), "unsupported function `SomeFunc` at column 1");
        assert_eq!(parse_err("round(1, 2, 3)"), "function `round` takes 1 to 2 arguments, got 3 at column 1");
        assert_eq!(parse_err("abs()"), "function `abs` takes 1 argument, got 0 at column 1");
        assert_eq!(parse_err("1 + sum()"), "function `sum` takes at least 1 argument, got 0 at column 5");
        assert_eq!(parse_err("if([a], 1)"), "function `if` takes 3 arguments, got 2 at column 1");
        assert_eq!(parse_err("datediff([a], [b])"), "function `datediff` takes 3 to 5 arguments, got 2 at column 1");
    }

    #[test]
    fn literal_datediff_arguments_are_checked() {
        assert_eq!(
            parse_err("datediff([a], [b], 'x')"),
            "invalid datediff unit 'x' (expected \"y\", \"M\", \"d\", \"h\", \"m\" or \"s\") at column 20"
        );
        assert_eq!(
            parse_err("datediff([a], [b], 'D')"),
            "invalid datediff unit 'D' (expected \"y\", \"M\", \"d\", \"h\", \"m\" or \"s\") at column 20"
        );
        assert_eq!(
            parse_err("datediff('now', [b], 'h')"),
            "'now' is not supported in datediff (use 'today' or a datetime field) at column 10"
        );
        assert_eq!(
            parse_err("datediff([a], [b], 'd', 'xyz')"),
            "invalid datediff option 'xyz' (expected \"ymd\", \"mdy\", \"dmy\", true or false) at column 25"
        );
        assert_eq!(
            parse_err("datediff([a], [b], 'd', 'ymd', 'mdy')"),
            "invalid datediff option 'mdy' (expected true or false) at column 32"
        );
    }

    #[test]
    fn columns_count_characters_and_lines() {
        let e = parse("'é' = [a").unwrap_err();
        assert_eq!((e.offset(), e.column()), (7, 7));
        assert_eq!(e.to_string(), "unterminated field reference at column 7");
        assert_eq!(parse_err("[a] = 1\nand [b] = "), "unexpected end of input at line 2, column 11");
        assert_eq!(parse_err("[a] = 1\n  or foo([b])"), "unsupported function `foo` at line 2, column 6");
    }
}

mod limits {
    use super::*;

    #[test]
    fn long_chains_are_fine() {
        let ids: Vec<String> = (1..=5000).map(|i| format!("[record_id] = '{i}'")).collect();
        let logic = parse(&ids.join(" or ")).unwrap();
        assert!(logic.is_true(&empty().with("record_id", "4999")).unwrap());
        assert!(!logic.is_true(&empty().with("record_id", "5001")).unwrap());
        assert_eq!(logic.fields(), vec![FieldRef::new("record_id")]);

        let terms: Vec<String> = (1..=5000).map(|i| format!("[q{i}]")).collect();
        let ctx = (1..=5000).fold(empty(), |ctx, i| ctx.with(format!("q{i}"), "1"));
        assert_eq!(eval_in(&terms.join(" + "), &ctx), Value::Number(5000.0));
        assert_eq!(eval_in(&terms.join(" * "), &ctx), Value::Number(1.0));
    }

    /// Maximal nesting of every recursive construct (100 levels, counting the top level).
    fn deepest() -> Vec<(&'static str, String)> {
        let mut ifs = "'other'".to_owned();
        for i in (1..=99).rev() {
            ifs = format!("if([x] = {i}, 'v{i}', {ifs})");
        }
        vec![
            ("parens", format!("{}1{}", "(".repeat(99), ")".repeat(99))),
            ("ifs", ifs),
            ("nots", format!("{}[x]", "not ".repeat(99))),
            ("negs", format!("{}1", "-".repeat(99))),
            ("pows", format!("{}1", "1 ^ ".repeat(99))),
            ("calls", format!("{}1{}", "abs(".repeat(99), ")".repeat(99))),
            ("mixed", format!("{}1{}", "abs(-(".repeat(33), "))".repeat(33))),
        ]
    }

    #[test]
    fn deep_nesting_is_bounded() {
        for (name, src) in deepest() {
            let logic = parse(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
            logic.eval(&empty()).unwrap();
        }
        let too_deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(parse_err(&too_deep), "expression is nested too deeply (more than 100 levels) at column 101");
        assert!(parse_err(&format!("{}[a]", "not ".repeat(1000))).starts_with("expression is nested too deeply"));
        assert!(parse_err(&format!("{}1", "-".repeat(1000))).starts_with("expression is nested too deeply"));
        assert!(parse_err(&format!("{}1", "1 ^ ".repeat(1000))).starts_with("expression is nested too deeply"));
        assert!(
            parse_err(&format!("{}1{}", "abs(".repeat(1000), ")".repeat(1000))).starts_with("expression is nested too")
        );
    }

    #[test]
    fn deepest_input_fits_in_a_small_stack() {
        // Parsing, evaluating, displaying and dropping the deepest accepted input must fit
        // comfortably in a 1 MiB stack even in debug builds (threads usually get 2 MiB).
        let handle = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                for (_, src) in deepest() {
                    let logic = parse(&src).unwrap();
                    logic.eval(&empty().with("x", "0")).unwrap();
                    assert!(!logic.to_string().is_empty());
                    assert_eq!(logic.clone(), logic);
                }
            })
            .unwrap();
        handle.join().unwrap();
    }

    #[test]
    fn deeply_nested_ifs_evaluate() {
        // A "switch" written as nested ifs, as calculated fields often are.
        let (_, src) = deepest().swap_remove(1);
        assert_eq!(eval_in(&src, &empty().with("x", "99")), Value::Text("v99".into()));
        assert_eq!(eval_in(&src, &empty().with("x", "100")), Value::Text("other".into()));
    }
}

mod context {
    use super::*;

    /// A hand-written context, as the emulator would provide.
    struct Record;

    impl Context for Record {
        fn value(&self, field: &FieldRef) -> Option<String> {
            match (field.event.as_deref(), field.field.as_str(), field.checkbox_code.as_deref()) {
                (None, "age", None) => Some("42".into()),
                (Some("baseline_arm_1"), "age", None) => Some("40".into()),
                (None, "race", Some("1")) => Some("1".into()),
                (None, "race", Some(_)) => None,
                (None, "empty", None) => Some(String::new()),
                _ => None,
            }
        }
    }

    #[test]
    fn custom_context_with_defaults() {
        assert!(parse("[age] = 42 and [baseline_arm_1][age] = 40").unwrap().is_true(&Record).unwrap());
        assert!(parse("[race(1)] = 1 and [race(2)] = 0").unwrap().is_true(&Record).unwrap());
        assert!(parse("[empty] = '' and [nothing] = ''").unwrap().is_true(&Record).unwrap());
        assert!(parse("isblankormissingcode([empty])").unwrap().is_true(&Record).unwrap());
        assert!(Record.missing_codes().is_empty());
        assert!(Record.today().year() >= 2024);
        // 'today' defaults to the system clock; a date in the past is therefore positive days ago.
        assert!(parse("datediff('2000-01-01', 'today', 'd', true) > 8000").unwrap().is_true(&Record).unwrap());
    }

    #[test]
    fn map_context_ignores_other_events() {
        let ctx = MapContext::new().with_event("e1", "a", "1");
        assert!(parse("[a] = ''").unwrap().is_true(&ctx).unwrap());
        assert!(parse("[e2][a] = ''").unwrap().is_true(&ctx).unwrap());
        assert!(parse("[e1][a] = 1").unwrap().is_true(&ctx).unwrap());
    }

    #[test]
    fn logic_is_reusable_across_records() {
        let logic = parse("[age] >= 18 and [consent] = '1'").unwrap();
        let records = [("17", "1"), ("18", "1"), ("40", "0"), ("", "1"), ("65", "1")];
        let passing: Vec<&str> = records
            .iter()
            .filter(|(age, consent)| {
                logic.is_true(&MapContext::new().with("age", *age).with("consent", *consent)).unwrap()
            })
            .map(|(age, _)| *age)
            .collect();
        assert_eq!(passing, ["18", "65"]);
    }
}

#[test]
fn public_types_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Logic>();
    assert_send_sync::<Value>();
    assert_send_sync::<FieldRef>();
    assert_send_sync::<MapContext>();
    assert_send_sync::<redcap_logic::ParseError>();
    assert_send_sync::<redcap_logic::EvalError>();
}
