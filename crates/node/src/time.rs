//! Kubernetes times. k8s-openapi's `jiff` is built without `std`, so "now"
//! comes from the system clock here.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub fn now_ts() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn now() -> Time {
    Time(now_ts())
}

/// RFC 3339 with seconds precision, as the API server writes times.
pub fn now_string() -> String {
    now_ts().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
