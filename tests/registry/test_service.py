"""Registry rules: checkpoints from training runs and their lineage, names, endpoints, deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.db import Database
from app.kit.errors import Conflict, Invalid
from app.models import Project, RegisteredModel
from app.registry import service
from app.registry.schemas import ModelIn, ModelOut, ModelUpdate
from app.registry.weights import weights_digest
from tests.factories import make_project
from tests.registry.conftest import Registry

SHA = "ab" * 32


def project(s: Session, reg: Registry) -> Project:
    found = s.get(Project, reg.project_id)
    assert found is not None
    return found


def checkpoint(
    s: Session, reg: Registry, name: str = "dpo-r1", parent_uri: str | None = "/models/sft"
) -> RegisteredModel:
    return service.register_checkpoint(
        s,
        project(s, reg),
        name=name,
        uri=f"/out/{name}",
        weights_sha256=SHA,
        training_run=reg.run_id,
        params={"beta": 0.1},
        metrics={"rewards/accuracies": 0.75},
        parent_uri=parent_uri,
    )


def test_checkpoint_records_run_snapshot_and_a_new_sft_parent(db: Database, reg: Registry) -> None:
    with db.session() as s:
        model = checkpoint(s, reg)
        assert (model.kind, model.uri, model.weights_sha256) == ("checkpoint", "/out/dpo-r1", SHA)
        assert model.training_run_id == reg.run_id
        assert (model.snapshot_id, model.snapshot_sha256) == (reg.snapshot_id, reg.snapshot_sha256)
        assert model.params == {"beta": 0.1} and model.metrics == {"rewards/accuracies": 0.75}
        parent = s.get(RegisteredModel, model.parent_id)
        assert parent is not None
        assert (parent.kind, parent.uri, parent.name) == ("sft", "/models/sft", "sft")


def test_second_checkpoint_reuses_the_parent_and_gets_a_suffix(db: Database, reg: Registry) -> None:
    with db.session() as s:
        first = checkpoint(s, reg)
        second = checkpoint(s, reg)
        third = checkpoint(s, reg)
        assert (first.name, second.name, third.name) == ("dpo-r1", "dpo-r1-2", "dpo-r1-3")
        assert first.parent_id == second.parent_id == third.parent_id
        out = service.list_models(s, project=project(s, reg))
    assert [m.name for m in out] == ["sft", "dpo-r1", "dpo-r1-2", "dpo-r1-3"]
    assert out[0].children == [m.id for m in out[1:]]
    assert {m.parent_name for m in out[1:]} == {"sft"}


def test_parent_is_the_registered_model_at_the_base_uri(db: Database, reg: Registry) -> None:
    with db.session() as s:
        p = project(s, reg)
        base = service.add_model(
            s,
            project=p,
            data=ModelIn(name="llama-sft", kind="sft", uri="/models/sft"),
            user_id=None,
            allow_private=True,
        )
        model = checkpoint(s, reg)
        assert model.parent_id == base.id
        # A chain: round 2 trains from round 1's output.
        r2 = checkpoint(s, reg, name="dpo-r2", parent_uri="/out/dpo-r1")
        assert r2.parent_id == model.id
        no_parent = checkpoint(s, reg, name="orphan", parent_uri=None)
        assert no_parent.parent_id is None
        assert len(s.query(RegisteredModel).all()) == 4


def test_add_hashes_a_local_directory_and_refuses_a_taken_name(db: Database, reg: Registry, tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    with db.session() as s:
        p = project(s, reg)
        model = service.add_model(
            s,
            project=p,
            data=ModelIn(name="local", uri=str(tmp_path), snapshot_id=reg.snapshot_id),
            user_id=None,
            allow_private=True,
        )
        assert model.weights_sha256 is None  # a path sent to the app is never read there
        assert weights_digest(tmp_path) is not None
        assert model.snapshot_sha256 == reg.snapshot_sha256
        with pytest.raises(Conflict):
            service.add_model(s, project=p, data=ModelIn(name="local"), user_id=None, allow_private=True)


def test_add_refuses_rows_of_another_project(db: Database, reg: Registry) -> None:
    with db.session() as s:
        other = s.get(Project, reg.other_project_id)
        assert other is not None
        theirs = service.add_model(s, project=other, data=ModelIn(name="theirs"), user_id=None, allow_private=True)
        p = project(s, reg)
        for data in (
            ModelIn(name="x", parent_id=theirs.id),
            ModelIn(name="x", training_run_id=reg.run_id + 100),
        ):
            with pytest.raises(Invalid):
                service.add_model(s, project=p, data=data, user_id=None, allow_private=True)
        # the snapshot of another project
        snapshot = make_project(s, "third")
        with pytest.raises(Invalid):
            service.add_model(
                s,
                project=snapshot,
                data=ModelIn(name="y", snapshot_id=reg.snapshot_id),
                user_id=None,
                allow_private=True,
            )


def test_endpoint_follows_the_egress_rules(db: Database, reg: Registry) -> None:
    with db.session() as s:
        p = project(s, reg)
        data = ModelIn(name="m", base_url="http://127.0.0.1:8000/v1", served_name="m")
        with pytest.raises(Invalid):
            service.add_model(s, project=p, data=data, user_id=None, allow_private=False)
        model = service.add_model(s, project=p, data=data, user_id=None, allow_private=True)
        assert model.base_url == "http://127.0.0.1:8000"
        with pytest.raises(Invalid):
            service.update_model(
                s,
                project=p,
                model_id=model.id,
                data=ModelUpdate(base_url="http://10.0.0.1:8000", served_name="m"),
                allow_private=False,
            )
        service.update_model(
            s, project=p, model_id=model.id, data=ModelUpdate(base_url=None, served_name=None), allow_private=False
        )
        assert (model.base_url, model.served_name) == (None, None)
        service.update_model(s, project=p, model_id=model.id, data=ModelUpdate(name="renamed"), allow_private=False)
        assert model.name == "renamed"


def test_delete_refused_while_an_arena_lists_the_model(db: Database, reg: Registry) -> None:
    with db.session() as s:
        p = project(s, reg)
        a = service.add_model(s, project=p, data=ModelIn(name="a"), user_id=None, allow_private=True)
        b = service.add_model(s, project=p, data=ModelIn(name="b", parent_id=a.id), user_id=None, allow_private=True)
        make_project(s, "arena-1", kind="arena", parent_id=p.id, arena={"model_ids": [a.id, 999]})
        with pytest.raises(Conflict, match="arena-1"):
            service.delete_model(s, project=p, model_id=a.id)
        service.delete_model(s, project=p, model_id=b.id)
        assert s.get(RegisteredModel, b.id) is None
        assert s.get(RegisteredModel, a.id) is not None


def test_a_name_taken_meanwhile_is_a_conflict_and_the_session_lives_on(db: Database, reg: Registry) -> None:
    with db.session() as s:
        p = project(s, reg)
        s.add(RegisteredModel(project_id=p.id, name="raced"))
        s.flush()
        # What a concurrent request's insert meets: the unique constraint, after the name check passed.
        with pytest.raises(Conflict):
            service._store(s, RegisteredModel(project_id=p.id, name="raced"))
        assert [m.name for m in service.list_models(s, project=p)] == ["raced"]


def test_checkpoint_refuses_a_run_of_another_project(db: Database, reg: Registry) -> None:
    with db.session() as s:
        other = s.get(Project, reg.other_project_id)
        assert other is not None
        with pytest.raises(Invalid):
            service.register_checkpoint(
                s,
                other,
                name="x",
                uri="/out/x",
                weights_sha256=None,
                training_run=reg.run_id,
                params={},
                metrics={},
                parent_uri=None,
            )
        assert service.list_models(s, project=other) == []


def test_names_are_stripped_and_hashes_lowered(db: Database, reg: Registry) -> None:
    with db.session() as s:
        p = project(s, reg)
        model = service.add_model(
            s, project=p, data=ModelIn(name="  spaced ", weights_sha256=SHA.upper()), user_id=None, allow_private=True
        )
        assert (model.name, model.weights_sha256) == ("spaced", SHA)
        with pytest.raises(Conflict):
            service.add_model(s, project=p, data=ModelIn(name="spaced  "), user_id=None, allow_private=True)
        renamed = service.update_model(
            s, project=p, model_id=model.id, data=ModelUpdate(name=" new "), allow_private=True
        )
        assert renamed.name == "new"


def test_deleting_a_parent_leaves_its_children_as_roots(db: Database, reg: Registry) -> None:
    with db.session() as s:
        child = checkpoint(s, reg)
        parent_id = child.parent_id
        assert parent_id is not None
        service.delete_model(s, project=project(s, reg), model_id=parent_id)
    with db.session() as s:
        (out,) = service.list_models(s, project=project(s, reg))
        assert (out.name, out.parent_id, out.parent_name) == ("dpo-r1", None, None)
        assert [(r.model.name, r.depth) for r in service.lineage_rows([out])] == [("dpo-r1", 0)]


def _out(mid: int, parent: int | None, children: list[int]) -> ModelOut:
    return ModelOut.model_validate(
        {
            "id": mid,
            "project": "p",
            "name": f"m{mid}",
            "kind": "other",
            "uri": "",
            "parent_id": parent,
            "parent_name": None,
            "children": children,
            "snapshot_id": None,
            "snapshot_sha256": None,
            "training_run_id": None,
            "params": {},
            "metrics": {},
            "weights_sha256": None,
            "base_url": None,
            "served_name": None,
            "created_at": "2026-12-04T00:00:00Z",
        }
    )


def test_lineage_rows_order_depth_and_cycles() -> None:
    tree = [_out(1, None, [2, 4]), _out(2, 1, [3]), _out(3, 2, []), _out(4, 1, []), _out(5, None, [])]
    assert [(r.model.id, r.depth) for r in service.lineage_rows(tree)] == [(1, 0), (2, 1), (3, 2), (4, 1), (5, 0)]
    loop = [_out(6, 7, [7]), _out(7, 6, [6])]  # each the other's parent: both listed once
    assert [(r.model.id, r.depth) for r in service.lineage_rows(loop)] == [(6, 0), (7, 1)]


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"eval_rewards/accuracies": 0.9, "rewards/accuracies": 0.7}, 0.9),
        ({"rewards/accuracies": 0.7}, 0.7),
        ({"rewards/accuracies": True}, None),
        ({"rewards/accuracies": "0.7"}, None),
        ({}, None),
    ],
)
def test_reward_accuracy(metrics: dict[str, object], expected: float | None) -> None:
    assert service.reward_accuracy(metrics) == expected
