"""The sampling commands' defaults: one preset (``config.CLI_SGLD``) and one device rule."""

from dataclasses import replace

import pytest

from llcgeo import cli
from llcgeo.commands._common import config_from_args
from llcgeo.config import CLI_SGLD, SGLDConfig

CASE = ["--manifold", "sphere", "--d", "3", "--m", "1"]


@pytest.mark.parametrize("command", ["estimate", "verify", "calibrate"])
def test_every_sampling_command_takes_the_cli_preset_and_auto_device(command):
    args = cli.build_parser().parse_args([command, *CASE])
    assert config_from_args(args) == CLI_SGLD
    assert args.device == "auto"


def test_the_preset_differs_from_the_library_default_only_in_its_length():
    default = SGLDConfig()
    same_length = replace(CLI_SGLD, chains=default.chains, steps=default.steps,
                          burnin=default.burnin)  # fmt: skip
    assert same_length == default
    assert CLI_SGLD.draws * CLI_SGLD.chains > default.draws * default.chains


def test_the_estimate_dtype_default_is_the_presets():
    assert cli.build_parser().parse_args(["estimate", *CASE]).dtype == CLI_SGLD.dtype


@pytest.mark.parametrize("command", ["estimate", "verify", "calibrate"])
def test_a_device_that_cannot_be_one_is_refused_with_the_names(command, capsys):
    assert cli.main([command, *CASE, "--n", "200", "--device", "tpu"]) == 2
    assert "device must be one of auto, cpu, cuda" in capsys.readouterr().err
