//! Export Reports (seed RC-API-38).

use std::collections::HashSet;

use serde_json::Value;

use super::record::{cell_options, render_rows};
use super::{Ctx, HResult, Reply, bad, forbidden};
use crate::logic;
use crate::odm_out;
use crate::records::{self, CellOptions, CellPlan, Col, Dataset, RowData, record_cmp};
use crate::render::{self, Out};

/// Export Reports: the report's fields, order, filters and options; always flat.
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let level = ctx.need_data_export()?;
    // Recorded text and status (redcapAPI issue #48); without an id it names none
    // (`report_id= does not belong…`, AndrewPoppe/ApiUserRights' Playwright suite).
    let not_ours = |id: &str| {
        forbidden(format!("The API request cannot complete because report_id={id} does not belong to this project."))
    };
    let raw = ctx.params.get("report_id").unwrap_or("").trim().to_owned();
    if raw.is_empty() {
        return Err(not_ours(""));
    }
    let id: i64 = raw.parse().map_err(|_| bad("The value of the parameter \"report_id\" is not valid"))?;
    let project = ctx.project.clone();
    let p = &*project;
    let Some(report) = p.def.reports.iter().find(|r| r.id == id) else {
        return Err(not_ours(&id.to_string()));
    };
    let odm = ctx.params.format() == Ok(redcap_core::Format::Odm);
    let out = if odm { Out::Xml } else { ctx.out(false)? };
    let mut opts = cell_options(ctx)?;
    opts.remove_line_breaks = report.remove_line_breaks;

    let names: Vec<String> = report
        .fields
        .iter()
        .filter(|f| f.as_str() == p.def.record_id_field || p.form_of(f).is_some())
        .filter(|f| !ctx.export_hides(level, f))
        .cloned()
        .collect();
    let with_dag = report.output_dags && ctx.user.dag_id.is_none();
    let survey = report.output_survey_fields;
    let cols = records::columns(p, &names, with_dag, report.combine_checkbox_values, survey);
    let filter = logic::compile(p, &report.advanced_logic).map_err(bad)?;
    let dag_filter: Option<HashSet<i64>> = (!report.filter_dags.is_empty())
        .then(|| report.filter_dags.iter().filter_map(|u| p.dag_by_unique(u).map(|d| d.id)).collect());

    let data = Dataset::load(ctx.store, p)?;
    let record_level = report.filter_type != "EVENT";
    let passing_records: Option<HashSet<&str>> = match (&filter, record_level) {
        (Some(f), true) => {
            Some(data.rows.iter().filter(|r| f.matches(p, &data, r)).map(|r| r.key.record.as_str()).collect())
        }
        _ => None,
    };
    let mut selected = Vec::new();
    let mut relevance = records::Relevance::default();
    for row in &data.rows {
        let key = &row.key;
        let dag = data.dag_of(&key.record);
        if ctx.user.dag_id.is_some_and(|d| dag != Some(d)) {
            continue;
        }
        if dag_filter.as_ref().is_some_and(|set| !dag.is_some_and(|d| set.contains(&d))) {
            continue;
        }
        if !report.filter_events.is_empty() && !report.filter_events.contains(&key.event) {
            continue;
        }
        if !relevance.of(p, &cols, key) {
            continue;
        }
        match (&filter, &passing_records) {
            (_, Some(pass)) if !pass.contains(key.record.as_str()) => continue,
            (Some(f), None) if !f.matches(p, &data, row) => continue,
            _ => {}
        }
        selected.push(row);
    }
    // Ordering: rows come in record then event order; apply the report's sort keys (stable).
    let raw_opts = CellOptions::default();
    for (field, asc) in report.order_by.iter().rev() {
        if field == &p.def.record_id_field {
            selected.sort_by(|a, b| {
                let o = record_cmp(&a.key.record, &b.key.record);
                if *asc { o } else { o.reverse() }
            });
            continue;
        }
        // Each row's sort value computed once, not twice per comparison.
        let col = [Col::Field(field.clone())];
        let mut plan = CellPlan::new(p, &col, &raw_opts);
        let mut keyed: Vec<(Value, &RowData)> =
            selected.into_iter().map(|row| (plan.cells(&data, row).remove(0), row)).collect();
        keyed.sort_by(|(va, _), (vb, _)| {
            let o = records::value_cmp(va, vb);
            if *asc { o } else { o.reverse() }
        });
        selected = keyed.into_iter().map(|(_, row)| row).collect();
    }
    let n = selected.len();
    let r = if odm {
        // Values are raw in ODM whatever rawOrLabel says (labels live in the CodeLists).
        let clinical = odm_out::Clinical {
            rows: selected,
            names: names.iter().cloned().collect(),
            dag: with_dag,
            survey,
            files: None,
        };
        let body = odm_out::clinical_document(p, &ctx.env.version, &data, &clinical);
        Ok(Reply::Body { content_type: render::XML.into(), body: body.into_bytes() })
    } else {
        let mut plan = CellPlan::new(p, &cols, &opts);
        let rows: Vec<Vec<Value>> = selected.iter().map(|row| plan.cells(&data, row)).collect();
        render_rows(ctx, out, &cols, rows, &opts)
    };
    ctx.log("export", "Data export (API)", &format!("Export report (API) report_id={id}: {n} rows"), "")?;
    r
}
