//! CloudWatch Embedded Metric Format: one JSON line per invocation on stdout, which Lambda
//! ships to CloudWatch Logs and CloudWatch turns into metrics (no API call, no extra IAM).

use std::sync::{Arc, Mutex};

use serde_json::json;

pub const NAMESPACE: &str = "MoEngageSegment";

/// One invocation's numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationMetrics {
    pub received: u64,
    pub forwarded: u64,
    pub rejected: u64,
    pub retried: u64,
    /// Sent to the parked queue (the webhook).
    pub parked: u64,
    /// Sent to the refused queue.
    pub refused: u64,
    /// Delivered by the redelivery handler (events that had been parked).
    pub redelivered: u64,
    /// Events the mapping options skip.
    pub filtered: u64,
    /// `identify` messages made (`identify: per_user`).
    pub identifies: u64,
    /// 1 when the secret's mapping options are invalid (the last good ones serve, or, with
    /// none, the webhook answers 500): what an alarm watches.
    pub options_invalid: u64,
    pub segment_latency_ms: u64,
}

/// Where EMF lines go.
#[derive(Debug, Clone, Default)]
pub enum MetricsSink {
    /// Lambda: stdout.
    Stdout { function_name: String },
    /// Tests: kept in memory.
    Capture(Arc<Mutex<Vec<String>>>),
    /// Local runs.
    #[default]
    Off,
}

impl MetricsSink {
    pub fn emit(&self, m: &InvocationMetrics, moe_request_id: Option<&str>, timestamp_ms: i64) {
        let function_name = match self {
            MetricsSink::Stdout { function_name } => function_name.as_str(),
            MetricsSink::Capture(_) => "test",
            MetricsSink::Off => return,
        };
        let line = emf_line(m, function_name, moe_request_id, timestamp_ms);
        match self {
            MetricsSink::Stdout { .. } => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            MetricsSink::Capture(v) => {
                if let Ok(mut v) = v.lock() {
                    v.push(line);
                }
            }
            MetricsSink::Off => {}
        }
    }
}

/// Builds the EMF JSON document.
pub fn emf_line(
    m: &InvocationMetrics,
    function_name: &str,
    moe_request_id: Option<&str>,
    timestamp_ms: i64,
) -> String {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    {"Name": "Received", "Unit": "Count"},
                    {"Name": "Forwarded", "Unit": "Count"},
                    {"Name": "Rejected", "Unit": "Count"},
                    {"Name": "Retried", "Unit": "Count"},
                    {"Name": "Parked", "Unit": "Count"},
                    {"Name": "Refused", "Unit": "Count"},
                    {"Name": "Redelivered", "Unit": "Count"},
                    {"Name": "Filtered", "Unit": "Count"},
                    {"Name": "Identifies", "Unit": "Count"},
                    {"Name": "MappingOptionsInvalid", "Unit": "Count"},
                    {"Name": "SegmentLatencyMs", "Unit": "Milliseconds"},
                ],
            }],
        },
        "FunctionName": function_name,
        "Received": m.received,
        "Forwarded": m.forwarded,
        "Rejected": m.rejected,
        "Retried": m.retried,
        "Parked": m.parked,
        "Refused": m.refused,
        "Redelivered": m.redelivered,
        "Filtered": m.filtered,
        "Identifies": m.identifies,
        "MappingOptionsInvalid": m.options_invalid,
        "SegmentLatencyMs": m.segment_latency_ms,
        "moe_request_id": moe_request_id,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_shape() {
        let m = InvocationMetrics {
            received: 100,
            forwarded: 98,
            rejected: 2,
            retried: 1,
            parked: 0,
            refused: 1,
            redelivered: 0,
            filtered: 3,
            identifies: 4,
            options_invalid: 1,
            segment_latency_ms: 42,
        };
        let v: serde_json::Value =
            serde_json::from_str(&emf_line(&m, "fn", Some("r1"), 5)).unwrap();
        let def = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(def["Namespace"], NAMESPACE);
        for metric in def["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(v[name].is_u64(), "{name} must be a top-level number");
        }
        assert_eq!(v["FunctionName"], "fn");
        assert_eq!(v["Received"], 100);
        let names: Vec<&str> = def["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        // The names the stack's dashboard and alarms use (template.yaml).
        for name in [
            "Received",
            "Forwarded",
            "Rejected",
            "Retried",
            "Parked",
            "Refused",
            "Redelivered",
            "Filtered",
            "Identifies",
            "MappingOptionsInvalid",
            "SegmentLatencyMs",
        ] {
            assert!(names.contains(&name), "{name}");
        }
        assert_eq!(v["_aws"]["Timestamp"], 5);
    }
}
