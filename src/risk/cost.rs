//! Estimated monthly cost of what a call creates, from its arguments. It is
//! an order-of-magnitude estimate for anomaly scoring (is this 100x what
//! this principal usually creates?), not a price list: VM sizes are priced
//! per vCPU by family, counts multiply.

use serde_json::Value;

/// USD per vCPU per month by VM family letter (pay-as-you-go, rounded).
const PER_VCPU: [(char, f64); 10] = [
    ('a', 20.0),
    ('b', 15.0),
    ('d', 35.0),
    ('e', 45.0),
    ('f', 32.0),
    ('g', 60.0),
    ('h', 70.0),
    ('l', 45.0),
    ('m', 110.0),
    ('n', 300.0),
];

/// The estimated monthly cost of the resources a call creates, if its
/// arguments name a size or SKU Warden can price.
pub fn estimate(arguments: Option<&Value>) -> Option<f64> {
    let args = arguments?.as_object()?;
    let get = |names: &[&str]| {
        args.iter()
            .find(|(k, _)| {
                let k = k.to_ascii_lowercase().replace(['_', '-'], "");
                names.contains(&k.as_str())
            })
            .map(|(_, v)| v)
    };
    let count = get(&["count", "capacity", "instancecount", "instances"])
        .and_then(Value::as_f64)
        .unwrap_or(1.0)
        .clamp(1.0, 10_000.0);
    let size = get(&["vmsize", "size", "sku", "skuname"])
        .and_then(Value::as_str)?
        .to_ascii_lowercase();
    Some(vm_monthly(&size)? * count)
}

/// `standard_d4s_v5` → 4 vCPUs of family D.
fn vm_monthly(size: &str) -> Option<f64> {
    let name = size
        .strip_prefix("standard_")
        .or_else(|| size.strip_prefix("basic_"))
        .unwrap_or(size);
    let mut chars = name.chars();
    let family = chars.next()?;
    let digits: String = chars
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    let vcpus: f64 = digits.parse().ok()?;
    let per = PER_VCPU
        .iter()
        .find(|(f, _)| *f == family)
        .map_or(40.0, |(_, p)| *p);
    Some(vcpus.max(1.0) * per)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prices_vm_sizes_by_family_and_vcpus() {
        assert_eq!(
            estimate(Some(&json!({"vmSize": "Standard_D4s_v5"}))),
            Some(140.0)
        );
        assert_eq!(
            estimate(Some(&json!({"vm_size": "Standard_B2ms"}))),
            Some(30.0)
        );
        let big = estimate(Some(&json!({"vmSize": "Standard_M416ms_v2"}))).unwrap();
        assert!(big > 40_000.0, "{big}");
        assert_eq!(
            estimate(Some(&json!({"vmSize": "Standard_D2s_v3", "count": 10}))),
            Some(700.0)
        );
    }

    #[test]
    fn nothing_to_price_is_none() {
        assert_eq!(estimate(None), None);
        assert_eq!(estimate(Some(&json!({"name": "vm1"}))), None);
        assert_eq!(estimate(Some(&json!({"vmSize": "large"}))), None);
        assert_eq!(estimate(Some(&json!("Standard_D4s_v5"))), None);
    }
}
