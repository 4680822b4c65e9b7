//! A SOAP 1.1 or 1.2 answer of a web service, dropped in an inbox or imported: read as
//! the web-service source reads the answers it fetches ([`roster_shared::soap`]), its
//! records then taken as a JSON file's are ([`crate::json_input`]).

use std::io::{Cursor, Read};

use roster_shared::soap::{Version, read_answer};

use crate::decode::Decoded;
use crate::error::RejectReason;

/// The records of the SOAP answer in `decoded` as the JSON document the web-service
/// source would have written (`{"employees": [...]}`, record `n` on line `n`, so a row
/// error's line is the record's position). The answer is read whole: SOAP answers are
/// pages of a web service, and the parser admits a file by three times its size.
pub fn to_json(decoded: Decoded) -> Result<Decoded, RejectReason> {
    let mut bytes = Vec::new();
    let Decoded {
        mut reader,
        encoding,
        bom,
        ..
    } = decoded;
    reader.read_to_end(&mut bytes).map_err(RejectReason::Io)?;
    let text = String::from_utf8(bytes)
        .map_err(|e| RejectReason::Soap(format!("not valid UTF-8 text: {}", e.utf8_error())))?;
    let answer = read_answer(&text, Version::sniff(&text), None, None)
        .map_err(|e| RejectReason::Soap(e.to_string()))?;
    let mut json = b"{\"employees\":[".to_vec();
    for (i, record) in answer.records.iter().enumerate() {
        if i > 0 {
            json.extend_from_slice(b"\n,");
        }
        serde_json::to_writer(&mut json, record).expect("a map of JSON values serialises");
    }
    json.extend_from_slice(b"]}\n");
    let head = json[..json.len().min(8192)].to_vec();
    Ok(Decoded {
        reader: Box::new(Cursor::new(json)),
        validate: false,
        encoding,
        bom,
        head,
    })
}
