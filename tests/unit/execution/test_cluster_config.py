"""``--cluster`` resolution: the default is no executor, bad forms and configuration files are one clear error."""

from __future__ import annotations

import pytest

from autounet.errors import ClusterError, ConfigError
from autounet.pipeline.cluster import load_cluster_config, open_cluster


def test_no_cluster_means_the_local_pool() -> None:
    with open_cluster(None) as executor:
        assert executor is None


def test_unknown_cluster_form() -> None:
    pytest.importorskip("distributed")
    with pytest.raises(ClusterError, match="Unknown --cluster 'kubernetes'"), open_cluster("kubernetes"):
        pass


def test_cluster_config_files(tmp_path) -> None:
    pytest.importorskip("yaml")
    good = tmp_path / "good.yaml"
    good.write_text("cluster:\n  queue: gpu\n  cores: 8\n  memory: 32GB\njobs: 2\n", encoding="utf-8")
    assert load_cluster_config(good) == {"cluster": {"queue": "gpu", "cores": 8, "memory": "32GB"}, "jobs": 2}
    bad_key = tmp_path / "bad.yaml"
    bad_key.write_text("clutser: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml has unknown entries \['clutser'\]"):
        load_cluster_config(bad_key)
    broken = tmp_path / "broken.yaml"
    broken.write_text("cluster: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_cluster_config(broken)
    with pytest.raises(ConfigError, match="Cannot read the cluster configuration"):
        load_cluster_config(tmp_path / "missing.yaml")


def test_jobqueue_without_config_or_batch_command(tmp_path, monkeypatch) -> None:
    pytest.importorskip("distributed")
    from autounet.pipeline import cluster

    monkeypatch.setattr(cluster.shutil, "which", lambda _cmd: None)
    with pytest.raises(ClusterError, match="'bsub' is not on this machine's PATH"), open_cluster("lsf"):
        pass
    monkeypatch.setattr(cluster.shutil, "which", lambda cmd: f"/usr/bin/{cmd}")
    with pytest.raises(ClusterError, match="needs --cluster-config FILE"), open_cluster("pbs"):
        pass
