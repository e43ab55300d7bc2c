//! How AWS rounds what happened into billable units.
//!
//! The local runtime's meter calls these for every request, item and
//! execution, so its counts are rounded the way each pricing page says AWS
//! bills them, not the way a payload happens to look.

/// Express workflow duration is billed in increments of this many ms.
pub const EXPRESS_DURATION_INCREMENT_MS: u64 = 100;
/// Express workflow memory is billed in chunks of this many MB.
pub const EXPRESS_MEMORY_CHUNK_MB: u64 = 64;
/// Each chunk of this many bytes of an SQS payload is one request.
pub const SQS_REQUEST_CHUNK_BYTES: u64 = 64 * 1024;
/// HTTP API requests are metered in increments of this many bytes.
pub const API_GATEWAY_HTTP_INCREMENT_BYTES: u64 = 512 * 1024;
/// One DynamoDB write request unit covers an item of up to this many bytes.
pub const DYNAMODB_WRITE_UNIT_BYTES: u64 = 1024;
/// One DynamoDB read request unit covers a strongly consistent read of an
/// item of up to this many bytes.
pub const DYNAMODB_READ_UNIT_BYTES: u64 = 4 * 1024;

/// Whole `increment`s needed to cover `amount`, never fewer than one: a
/// request, a write or an execution that happened is billed at least once,
/// even with an empty payload or a duration below the clock's resolution.
fn increments(amount: u64, increment: u64) -> u64 {
    amount.div_ceil(increment).max(1)
}

/// Billed MB·ms of one Express execution: the duration rounded up to 100 ms
/// times the memory rounded up to a 64 MB chunk (at least one of each).
/// [`crate::Usage::express_billed_mb_ms`] is the sum of these.
pub fn express_billed_mb_ms(duration_ms: u64, memory_mb: u64) -> u64 {
    let billed_ms = increments(duration_ms, EXPRESS_DURATION_INCREMENT_MS)
        .saturating_mul(EXPRESS_DURATION_INCREMENT_MS);
    let billed_mb =
        increments(memory_mb, EXPRESS_MEMORY_CHUNK_MB).saturating_mul(EXPRESS_MEMORY_CHUNK_MB);
    billed_ms.saturating_mul(billed_mb)
}

/// Billed duration of one Express execution in ms (rounded up to 100 ms, at
/// least 100 ms); [`crate::Usage::express_billed_duration_ms`] sums these.
pub fn express_billed_duration_ms(duration_ms: u64) -> u64 {
    increments(duration_ms, EXPRESS_DURATION_INCREMENT_MS)
        .saturating_mul(EXPRESS_DURATION_INCREMENT_MS)
}

/// SQS requests billed for one API call carrying `bytes` of payload (a batch
/// counts its messages' bytes together): one per 64 KB chunk, at least one.
pub fn sqs_requests_for_payload(bytes: u64) -> u64 {
    increments(bytes, SQS_REQUEST_CHUNK_BYTES)
}

/// HTTP API requests billed for one request of `bytes`: one per 512 KB, at
/// least one.
pub fn api_requests_for_payload(bytes: u64) -> u64 {
    increments(bytes, API_GATEWAY_HTTP_INCREMENT_BYTES)
}

/// Write request units of a standard (non-transactional) write of an item of
/// `item_bytes`: one per KB, at least one.
pub fn dynamodb_write_units(item_bytes: u64) -> u64 {
    increments(item_bytes, DYNAMODB_WRITE_UNIT_BYTES)
}

/// Read request units of a (non-transactional) read of an item of
/// `item_bytes`: one per 4 KB strongly consistent, half of that eventually
/// consistent.
pub fn dynamodb_read_units(item_bytes: u64, strongly_consistent: bool) -> f64 {
    // Exact in f64: unit counts stay far below 2^53.
    let units = increments(item_bytes, DYNAMODB_READ_UNIT_BYTES) as f64;
    if strongly_consistent {
        units
    } else {
        units / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn express_rounds_duration_to_100_ms_and_memory_to_64_mb() {
        // Nothing measured is still one increment of each.
        assert_eq!(express_billed_mb_ms(0, 0), 100 * 64);
        assert_eq!(express_billed_mb_ms(100, 64), 100 * 64);
        assert_eq!(express_billed_mb_ms(101, 64), 200 * 64);
        assert_eq!(express_billed_mb_ms(100, 65), 100 * 128);
        assert_eq!(express_billed_mb_ms(101, 65), 200 * 128);
        assert_eq!(express_billed_duration_ms(0), 100);
        assert_eq!(express_billed_duration_ms(100), 100);
        assert_eq!(express_billed_duration_ms(101), 200);
    }

    /// Step Functions pricing page, Express memory example: a 50 KB
    /// definition and 400 map steps of 32 KB on the 50 MB base use 62.85 MB,
    /// billed as one 64 MB chunk.
    #[test]
    fn express_memory_example_bills_one_64_mb_chunk() {
        let used_kb: u64 = 50 * 1000 + 50 + 32 * 400; // the page counts 1,000 KB to the MB
        let used_mb = used_kb.div_ceil(1000);
        assert_eq!(used_mb, 63);
        assert_eq!(express_billed_mb_ms(1000, used_mb), 1000 * 64);
    }

    /// SQS pricing page (<https://aws.amazon.com/sqs/pricing/>): each 64 KB
    /// chunk of a payload is billed as one request, so an API action with a
    /// 256 KB payload is billed as four.
    #[test]
    fn sqs_counts_one_request_per_64_kb_chunk() {
        assert_eq!(sqs_requests_for_payload(0), 1);
        assert_eq!(sqs_requests_for_payload(65_536), 1);
        assert_eq!(sqs_requests_for_payload(65_537), 2);
        // The largest message, 256 KB, is four requests.
        assert_eq!(sqs_requests_for_payload(256 * 1024), 4);
    }

    /// API Gateway pricing page (<https://aws.amazon.com/api-gateway/pricing/>)
    /// and AWS's API Gateway private-APIs whitepaper: HTTP APIs are metered
    /// in 512 KB increments (so, by that rule, a 513 KB request meters as
    /// two).
    #[test]
    fn http_api_meters_in_512_kb_increments() {
        assert_eq!(api_requests_for_payload(0), 1);
        assert_eq!(api_requests_for_payload(524_288), 1);
        assert_eq!(api_requests_for_payload(524_289), 2);
        assert_eq!(api_requests_for_payload(513 * 1024), 2);
    }

    #[test]
    fn dynamodb_writes_take_one_unit_per_kb() {
        assert_eq!(dynamodb_write_units(0), 1);
        assert_eq!(dynamodb_write_units(1024), 1);
        assert_eq!(dynamodb_write_units(1025), 2);
        assert_eq!(dynamodb_write_units(3 * 1024), 3);
    }

    /// DynamoDB Developer Guide, read/write capacity mode, on-demand read
    /// and write request units
    /// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadWriteCapacityMode.html>):
    /// an 8 KB item takes 2 read request units strongly consistent, 1
    /// eventually consistent and 4 transactional; a 2 KB item takes 2 write
    /// request units, 4 transactional. The provisioned pricing page's key
    /// terms add 1 KB = 1 and 3 KB = 3 write units (6 transactional).
    /// Transactions are not metered here: they are asserted as the page's
    /// doubling of the standard count.
    #[test]
    fn dynamodb_developer_guide_on_demand_examples() {
        let kb = 1024;
        assert_eq!(dynamodb_read_units(8 * kb, true), 2.0);
        assert_eq!(dynamodb_read_units(8 * kb, false), 1.0);
        assert_eq!(2.0 * dynamodb_read_units(8 * kb, true), 4.0);
        assert_eq!(dynamodb_write_units(2 * kb), 2);
        assert_eq!(2 * dynamodb_write_units(2 * kb), 4);
        assert_eq!(dynamodb_write_units(kb), 1);
        assert_eq!(dynamodb_write_units(3 * kb), 3);
        assert_eq!(2 * dynamodb_write_units(3 * kb), 6);
    }

    #[test]
    fn dynamodb_reads_take_one_unit_per_4_kb_or_half_eventually_consistent() {
        assert_eq!(dynamodb_read_units(0, true), 1.0);
        assert_eq!(dynamodb_read_units(0, false), 0.5);
        assert_eq!(dynamodb_read_units(4096, true), 1.0);
        assert_eq!(dynamodb_read_units(4096, false), 0.5);
        assert_eq!(dynamodb_read_units(4097, true), 2.0);
        assert_eq!(dynamodb_read_units(4097, false), 1.0);
        // The provisioned page's example: an 8 KB item.
        assert_eq!(dynamodb_read_units(8 * 1024, true), 2.0);
        assert_eq!(dynamodb_read_units(8 * 1024, false), 1.0);
    }
}
