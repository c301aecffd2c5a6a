"""handaug.arguments: one rule for scalar arguments. numpy scalars are accepted and come back as
plain Python values, bools are not numbers, flags are bools only, NaN and infinities are refused,
and every message names the argument, what it expects and what it got."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from handaug.arguments import (
    check_choice,
    check_device,
    check_flag,
    check_int,
    check_odd,
    check_optional_flag,
    check_probability,
    check_real,
    check_seed,
    device_problem,
    is_flag,
    is_integer,
    is_real,
)
from handaug.data.masks import refine_green_screen
from handaug.data.readers.split import fixed_split

BOOLS = [True, False, np.bool_(True), np.bool_(False)]
NUMPY_INTS = [np.int8(3), np.int64(3), np.uint8(3), np.uint64(3)]
NUMPY_FLOATS = [np.float16(0.5), np.float32(0.5), np.float64(0.5)]
NOT_FINITE = [math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("inf")]


def test_the_predicates_state_the_rule():
    assert all(is_integer(v) for v in [0, -7, 2**70, *NUMPY_INTS])
    assert not any(is_integer(v) for v in [*BOOLS, 1.0, np.float64(1), "1", None])
    assert all(is_real(v) for v in [0, 0.5, *NUMPY_INTS, *NUMPY_FLOATS, *NOT_FINITE])
    assert not any(is_real(v) for v in [*BOOLS, "0.5", None, 1j, [0.5]])
    assert all(is_flag(v) for v in BOOLS)
    assert not any(is_flag(v) for v in [0, 1, np.int64(1), "True", None])


@pytest.mark.parametrize("value", [3, *NUMPY_INTS], ids=repr)
def test_integers_numpy_or_not_come_back_as_int(value):
    for checked in (check_int(value, "n"), check_int(value, "n", 0, 10), check_odd(value, "k", 1), check_seed(value)):
        assert checked == 3 and type(checked) is int


@pytest.mark.parametrize("value", [*BOOLS, 3.0, np.float64(3), "3", None, [3]], ids=repr)
def test_integer_checkers_refuse_bools_floats_and_strings(value):
    with pytest.raises(ValueError, match=rf"^count must be an integer in \[0, 10\], got {re.escape(repr(value))}$"):
        check_int(value, "count", 0, 10)
    with pytest.raises(ValueError, match=r"^kernel must be an odd integer >= 1, got "):
        check_odd(value, "kernel", 1)
    if value is not None:
        with pytest.raises(ValueError, match=r"^seed must be an integer \(or None\), got "):
            check_seed(value)


def test_integer_messages_say_the_expected_range():
    with pytest.raises(ValueError, match=r"^hue_center must be an integer in \[0, 179\], got 180$"):
        check_int(180, "hue_center", 0, 179)
    with pytest.raises(ValueError, match=r"^test_size must be a non-negative integer, got -1$"):
        check_int(-1, "test_size", 0)
    with pytest.raises(ValueError, match=r"^length must be an integer >= 1, got np.int64\(0\)$"):
        check_int(np.int64(0), "length", 1)
    with pytest.raises(ValueError, match=r"^step must be an integer <= 5, got 6$"):
        check_int(6, "step", high=5)
    with pytest.raises(ValueError, match=r"^median_kernel must be an odd integer >= 1, got 4$"):
        check_odd(4, "median_kernel", 1)
    assert check_int(-(2**70), "anything") == -(2**70)
    assert check_seed(None) is None and check_seed(-5) == -5


@pytest.mark.parametrize("value", [0.5, *NUMPY_FLOATS], ids=repr)
def test_reals_numpy_or_not_come_back_as_float(value):
    for checked in (check_real(value, "margin", 0, 4), check_probability(value)):
        assert checked == 0.5 and type(checked) is float
    assert type(check_real(np.int64(2), "margin", 0, 4)) is float and check_probability(np.uint8(1)) == 1.0


@pytest.mark.parametrize("value", [*BOOLS, *NOT_FINITE, "0.5", None, 10**400], ids=repr)
def test_real_checkers_refuse_bools_non_finite_values_and_strings(value):
    with pytest.raises(ValueError, match=r"^crop_margin must be a number in \[0, 4\], got "):
        check_real(value, "crop_margin", 0.0, 4.0)
    with pytest.raises(ValueError, match=r"^crop_margin must be a number in \[-inf, inf\], got "):
        check_real(value, "crop_margin", -math.inf, math.inf)  # infinite bounds still refuse NaN and inf
    with pytest.raises(ValueError, match=r"^p_batch must be a probability in \[0, 1\], got "):
        check_probability(value, "p_batch")


def test_real_messages_show_the_value_given():
    with pytest.raises(ValueError, match=r"^p must be a probability in \[0, 1\], got np.float32\(1.5\)$"):
        check_probability(np.float32(1.5))
    with pytest.raises(ValueError, match=r"^crop_margin must be a number in \[0, 4\], got nan$"):
        check_real(math.nan, "crop_margin", 0.0, 4.0)
    with pytest.raises(ValueError, match=r"^p must be a probability in \[0, 1\], got True$"):
        check_probability(True)


def test_unbounded_real_ranges_say_so():
    assert check_real(np.float32(1e30), "weight", 0.0, math.inf) == pytest.approx(1e30)
    with pytest.raises(ValueError, match=r"^weight must be a non-negative number, got -0.5$"):
        check_real(-0.5, "weight", 0.0, math.inf)
    with pytest.raises(ValueError, match=r"^weight must be a non-negative number, got inf$"):
        check_real(math.inf, "weight", 0.0, math.inf)  # an unbounded range still refuses infinity
    with pytest.raises(ValueError, match=r"^lr must be a number >= 1e-08, got True$"):
        check_real(True, "lr", 1e-8, math.inf)
    assert check_real(np.float32(0.5), "momentum", 0.0, 1.0, open_high=True) == 0.5
    for value in (1, 1.0, np.float64(1), -0.1, True, math.nan):
        with pytest.raises(ValueError, match=rf"^momentum must be a number in \[0, 1\), got {re.escape(repr(value))}$"):
            check_real(value, "momentum", 0.0, 1.0, open_high=True)


def test_choices_are_strings_from_the_tuple():
    norms = ("instance", "batch", "none")
    assert check_choice("batch", "norm", norms) == "batch"
    checked = check_choice(np.str_("none"), "norm", norms)
    assert checked == "none" and type(checked) is str
    for value in ("Batch", "", None, 1, True, ["batch"]):
        with pytest.raises(ValueError, match=rf"^norm must be one of \('instance', 'batch', 'none'\), got {re.escape(repr(value))}$"):
            check_choice(value, "norm", norms)


def test_flags_are_bools_only():
    for value in BOOLS:
        assert check_flag(value, "defer") is bool(value)
        assert check_optional_flag(value, "compile", "compile on CUDA") is bool(value)
    assert check_optional_flag(None, "compile", "compile on CUDA") is None
    for value in (0, 1, np.int64(1), 1.0, "yes", "True", None):
        with pytest.raises(ValueError, match=rf"^use_mask must be True or False, got {re.escape(repr(value))}$"):
            check_flag(value, "use_mask")
    with pytest.raises(ValueError, match=r"^compile must be True, False or None \(compile on CUDA\), got 1$"):
        check_optional_flag(1, "compile", "compile on CUDA")


def test_devices():
    assert check_device(None) is None
    assert check_device("cpu") == torch.device("cpu") and check_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^device must be a torch device such as 'cpu' or 'cuda:0' \(or None\), got 'tpu9'"):
        check_device("tpu9")
    with pytest.raises(ValueError, match=r"^export_device must be a torch device .*, got 3.5"):
        check_device(3.5, "export_device")
    with pytest.raises(ValueError, match=r"^device='meta' holds no data"):
        check_device("meta")
    assert device_problem(torch.device("cpu")) is None
    assert device_problem(torch.device("meta")) == "holds no data, so nothing can be computed there"
    assert device_problem(torch.device("cuda", 10**6)).startswith("is not available: this process sees ")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^device='cuda:0' is not available: this process sees 0 CUDA device"):
            check_device("cuda:0")


# ----------------------------------------------------------------------------- behaviour the rule changed
def test_the_split_sizes_and_seed_accept_numpy_integers():
    """``readers.split`` refused numpy integers before the one rule; bools stay refused."""
    items = list(range(20))
    assert fixed_split(items, "val", test_size=np.int64(5), val_size=np.int32(3), seed=np.int64(7)) == fixed_split(
        items, "val", test_size=5, val_size=3, seed=7
    )
    with pytest.raises(ValueError, match=r"^val_size must be a non-negative integer, got True$"):
        fixed_split(items, "val", val_size=True)
    with pytest.raises(ValueError, match=r"^split_seed must be a non-negative integer, got np.True_$"):
        fixed_split(items, "val", seed=np.bool_(True))


def test_mask_refinement_takes_numpy_integers_and_refuses_bools():
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 1] = 255
    plain = refine_green_screen(image, median_kernel=3, hue_center=60, max_contours=60)
    numpy = refine_green_screen(image, median_kernel=np.int64(3), hue_center=np.uint8(60), max_contours=np.int32(60))
    assert np.array_equal(plain.mask, numpy.mask) and plain.contours == numpy.contours
    with pytest.raises(ValueError, match=r"^median_kernel must be an odd integer >= 1, got np.True_$"):
        refine_green_screen(image, median_kernel=np.bool_(True))
    with pytest.raises(ValueError, match=r"^erosion_iterations must be an integer in \[0, 1000\], got True$"):
        refine_green_screen(image, erosion_iterations=True)
