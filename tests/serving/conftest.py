"""Fixtures of the serving tests.

``tf_serving_standin``: a factory starting ``tf_serving_standin.py`` (a
loopback stand-in for ``tensorflow_model_server``, which cannot be installed
here) in a fresh process::

    def test_x(tf_serving_standin):
        server = tf_serving_standin(model_base_path, "my_model")
        urllib.request.urlopen(server.rest_url + "/v1/models/my_model")
        grpc.insecure_channel(server.grpc_target)

Module-scoped: the servers a module starts are shared by its tests and are
stopped (SIGTERM, then SIGKILL after a timeout, by pid) when the module ends.
"""

from __future__ import annotations

import pytest

from tests.serving.standin import StandinHandle, start_standin


@pytest.fixture(scope="module")
def tf_serving_standin(tmp_path_factory):
    """Factory ``start(model_base_path, model_name, model_config_file=None,
    *, max_seconds=600, wait=True) -> StandinHandle``."""
    handles = []

    def start(*args, wait: bool = True, **kwargs) -> StandinHandle:
        """`start_standin`'s arguments after `workdir` (a fresh one here)."""
        workdir = tmp_path_factory.mktemp("tf_serving_standin")
        handle = start_standin(workdir, *args, wait=False, **kwargs)
        handles.append(handle)
        return handle.wait_ready() if wait else handle

    yield start
    for handle in handles:
        handle.stop()
