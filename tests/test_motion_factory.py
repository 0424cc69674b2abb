"""Choosing the motion model: the trained one when shipped, the loudness jaw otherwise, a clear error when forced."""

from __future__ import annotations

import pytest

from avatar_rt.errors import AvatarRtError
from avatar_rt.motion.factory import lipsync_available, make_motion_model
from avatar_rt.motion.loudness_jaw import LoudnessJawModel


def test_auto_falls_back_to_the_loudness_jaw_without_a_model():
    model = make_motion_model("auto", 25.0)
    if lipsync_available():
        assert type(model).__name__ == "LipSyncModel"
    else:
        assert isinstance(model, LoudnessJawModel)


def test_loudness_is_always_available():
    assert isinstance(make_motion_model("loudness", 30.0), LoudnessJawModel)


def test_forcing_a_missing_model_or_an_unknown_kind_is_a_clear_error():
    with pytest.raises(AvatarRtError, match="unknown motion model"):
        make_motion_model("telepathy", 25.0)
    if not lipsync_available():
        with pytest.raises(AvatarRtError) as err:
            make_motion_model("lipsync", 25.0)
        assert err.value.status == 503 and "lip-sync model" in err.value.message


def test_behaviour_choice_attaches_stage_b_or_leaves_the_idle_behaviour():
    if not lipsync_available():
        pytest.skip("no lip-sync model shipped in engines/")
    assert make_motion_model("lipsync", 25.0, "idle").behaviour is None
    with pytest.raises(AvatarRtError, match="unknown behaviour"):
        make_motion_model("lipsync", 25.0, "wild")
    try:
        student = make_motion_model("lipsync", 25.0, "model")
    except AvatarRtError as err:  # not shipped: forcing it says so
        assert err.status == 503 and "behaviour model" in err.message
        assert make_motion_model("lipsync", 25.0, "auto").behaviour is None
        return
    assert student.behaviour.steps == 2
    assert make_motion_model("lipsync", 25.0, "teacher").behaviour.steps > 2
    assert make_motion_model("lipsync", 25.0, "auto").behaviour is not None
