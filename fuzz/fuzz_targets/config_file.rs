//! `convrec serve --config FILE`: any file is refused with an error naming the setting, or
//! resolves to settings within their ranges.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convrec_server::config_file::fuzz_config_file(data));
