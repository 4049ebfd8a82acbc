// Matroska/WebM element ids (with their length marker bits, as read by `readVint(…, true)`) the audio path reads.

/** EBML header */
export const ID_EBML = 0x1a45dfa3;
/** DocType */
export const ID_DOCTYPE = 0x4282;
/** Segment */
export const ID_SEGMENT = 0x18538067;
/** Info */
export const ID_INFO = 0x1549a966;
/** TimecodeScale */
export const ID_TIMECODE_SCALE = 0x2ad7b1;
/** Tracks */
export const ID_TRACKS = 0x1654ae6b;
/** TrackEntry */
export const ID_TRACK_ENTRY = 0xae;
/** TrackNumber */
export const ID_TRACK_NUMBER = 0xd7;
/** TrackType */
export const ID_TRACK_TYPE = 0x83;
/** CodecID */
export const ID_CODEC_ID = 0x86;
/** CodecPrivate */
export const ID_CODEC_PRIVATE = 0x63a2;
/** Audio */
export const ID_AUDIO = 0xe1;
/** Channels */
export const ID_CHANNELS = 0x9f;
/** Cluster */
export const ID_CLUSTER = 0x1f43b675;
/** Cluster Timecode */
export const ID_TIMECODE = 0xe7;
/** SimpleBlock */
export const ID_SIMPLE_BLOCK = 0xa3;
/** BlockGroup */
export const ID_BLOCK_GROUP = 0xa0;
/** Block */
export const ID_BLOCK = 0xa1;
/** CRC-32 */
export const ID_CRC32 = 0xbf;
/** Void */
export const ID_VOID = 0xec;
