"""The server's receive path for audio in aiortc: every packet goes to the decoder the moment it arrives."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from avatar_rt.server.rtp_audio import PassThroughAudioBuffer


def packet(seq: int) -> RtpPacket:
    p = RtpPacket(payload_type=111, sequence_number=seq % 65536, timestamp=(960 * seq) % (1 << 32))
    p._data = bytes([seq % 256])  # what aiortc's depayloader leaves on the packet
    return p


def released(buffer: PassThroughAudioBuffer, seqs: list[int]) -> list[int]:
    out = []
    for seq in seqs:
        _, frame = buffer.add(packet(seq))
        if frame is not None:
            out.append(frame.data[0])
    return out


def test_each_packet_is_released_as_it_arrives():
    buffer = PassThroughAudioBuffer(capacity=16)
    for seq in range(65530, 65540):  # across the sequence number's wrap
        _, frame = buffer.add(packet(seq))
        assert frame is not None and frame.data == bytes([seq % 256]) and frame.timestamp == (960 * seq) % (1 << 32)


def test_a_lost_packet_is_skipped_and_a_late_one_dropped():
    buffer = PassThroughAudioBuffer(capacity=16)
    # 3 is lost, then comes late (after 4 was played) and is too late to play; a duplicate 5 is dropped too.
    assert released(buffer, [1, 2, 4, 3, 5, 5, 6]) == [1, 2, 4, 5, 6]
