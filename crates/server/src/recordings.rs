//! `GET /api/v1/calls/{id}/recording`: a call's recording as a WAV file (both sides, the caller on the
//! left, the agent on the right), for supervisors, each read audited. Recordings are stored sealed
//! (DATA_KEY_FILE) and opened only here.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::auth::{Principal, Role};
use crate::{ApiError, AppState};

/// A 16-bit PCM WAV file of `channels` interleaved `samples` at `rate`.
pub(crate) fn wav(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
    let block_align = channels * 2;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

pub(crate) async fn recording(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    who.require(Role::Supervisor)?;
    let call = crate::api::parse_id(&id)?;
    if state.database.call(call).await?.is_none() {
        return Err(ApiError::not_found(format!("no call {call}")));
    }
    let Some(recording) = state.database.recording(call).await? else {
        return Err(ApiError::not_found(format!(
            "call {call} has no recording (RECORDING was off, the caller declined, or it was erased)"
        )));
    };
    state
        .auth
        .audit(&who, "call.recording.read", Some(call.to_string()), None)
        .await;
    let body = wav(recording.sample_rate, 2, &recording.samples);
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wav".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{call}.wav\""),
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wav_header_describes_the_samples() {
        let file = wav(8_000, 2, &[1, -1, 2, -2]);
        assert_eq!(&file[..4], b"RIFF");
        assert_eq!(&file[8..16], b"WAVEfmt ");
        assert_eq!(u16::from_le_bytes([file[22], file[23]]), 2, "channels");
        assert_eq!(
            u32::from_le_bytes([file[24], file[25], file[26], file[27]]),
            8_000
        );
        assert_eq!(
            u32::from_le_bytes([file[40], file[41], file[42], file[43]]),
            8,
            "data bytes"
        );
        assert_eq!(file.len(), 44 + 8);
    }
}
