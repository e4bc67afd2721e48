"""Posts (places and routes to cover) and the weekly shift templates at each post."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload

from volunteer_hub.auth.policy import Actor, can_manage_branch_plans, require, require_visible
from volunteer_hub.errors import ValidationFailed
from volunteer_hub.models import Branch, Skill, Town
from volunteer_hub.models.plans import Post, PostKind, ShiftKind, ShiftTemplate
from volunteer_hub.services import audit


def branch_by_code(session: Session, code: str, field: str = "branch") -> Branch:
    """:raise ValidationFailed: no branch has this code."""
    branch = session.scalar(select(Branch).where(Branch.code == code))
    if branch is None:
        raise ValidationFailed(f"No branch {code!r}.", errors={field: ["Unknown branch code."]})
    return branch


def town_exists(session: Session, town_id: int, field: str = "town") -> None:
    """:raise ValidationFailed: no such town."""
    if session.get(Town, town_id) is None:
        raise ValidationFailed(f"No town {town_id}.", errors={field: ["Unknown town."]})


def check_skills(session: Session, skills: Mapping[str, int], field: str = "skills") -> None:
    """:raise ValidationFailed: a skill code the catalogue does not have."""
    if not skills:
        return
    known = set(session.scalars(select(Skill.code).where(Skill.code.in_(list(skills)))))
    unknown = sorted(set(skills) - known)
    if unknown:
        raise ValidationFailed(
            f"Unknown skills: {', '.join(unknown)}.",
            errors={field: [f"Unknown skill {code!r}." for code in unknown]},
        )


def post_snapshot(post: Post) -> dict[str, Any]:
    return {
        "name": post.name,
        "town": post.town_id,
        "lat": post.lat,
        "lon": post.lon,
        "radius_m": post.radius_m,
        "kind": post.kind.value,
        "active": post.active,
    }


def create_post(session: Session, actor: Actor, data: Mapping[str, Any]) -> Post:
    """Add a post to a branch.

    :param data: the validated PostArgs.
    :return: the committed Post.
    :raise ValidationFailed: unknown branch or town. :raise Forbidden: not its coordinator (of
        the post's town, for a town-scoped grant).
    """
    branch = branch_by_code(session, data["branch"])
    require(
        can_manage_branch_plans(actor, branch.id, data["town"]),
        "Only the branch's coordinators (of the post's town) add posts.",
    )
    town_exists(session, data["town"])
    post = Post(
        branch_id=branch.id,
        town_id=data["town"],
        name=data["name"].strip(),
        lat=data["lat"],
        lon=data["lon"],
        radius_m=data["radius_m"],
        kind=PostKind(data["kind"]),
        active=True,
        created_by=actor.member_id,
    )
    session.add(post)
    session.flush()
    audit.record(
        session, actor.member_id, "post.create", "post", post.id, after=post_snapshot(post)
    )
    session.commit()
    return post


def post_query(session: Session, branch_code: str | None, town_id: int | None) -> Select[Any]:
    """Active posts, optionally of one branch and town; every signed-in member may list them.

    :raise ValidationFailed: unknown branch code.
    """
    query = select(Post).options(joinedload(Post.branch)).where(Post.active.is_(True))
    if branch_code is not None:
        query = query.where(Post.branch_id == branch_by_code(session, branch_code).id)
    if town_id is not None:
        query = query.where(Post.town_id == town_id)
    return query.order_by(Post.id)


def managed_post(session: Session, actor: Actor, post_id: int) -> Post:
    """A post the actor may change.

    :raise NotFound: no such post. :raise Forbidden: not a coordinator of its branch (in its
        town, for a town-scoped grant); every signed-in member sees posts.
    """
    post = session.get(Post, post_id)
    require_visible(post is not None, "post")
    assert post is not None
    require(
        can_manage_branch_plans(actor, post.branch_id, post.town_id),
        "Only the branch's coordinators (of the post's town).",
    )
    return post


def add_templates(
    session: Session, actor: Actor, post_id: int, data: Mapping[str, Any]
) -> list[ShiftTemplate]:
    """Add the same weekly need on several weekdays of a post.

    :return: the committed templates, one per weekday.
    :raise NotFound, Forbidden: see `managed_post`. :raise ValidationFailed: unknown skills.
    """
    post = managed_post(session, actor, post_id)
    check_skills(session, data["skills"])
    start: time = data["start"].replace(second=0, microsecond=0)
    end: time = data["end"].replace(second=0, microsecond=0)
    created = []
    for weekday in sorted(set(data["weekdays"])):
        template = ShiftTemplate(
            post_id=post.id,
            weekday=weekday,
            start_time=start,
            end_time=end,
            kind=ShiftKind(data["kind"]),
            headcount=data["headcount"],
            skills=dict(data["skills"]),
            leader_required=data["leader_required"],
            active=True,
        )
        session.add(template)
        created.append(template)
    session.flush()
    audit.record(
        session,
        actor.member_id,
        "shift_template.create",
        "post",
        post.id,
        after={
            "templates": [t.id for t in created],
            "weekdays": sorted(set(data["weekdays"])),
            "start": start.isoformat(),
            "end": end.isoformat(),
            "headcount": data["headcount"],
        },
    )
    session.commit()
    return created


def list_templates(session: Session, post_id: int) -> list[ShiftTemplate]:
    """:raise NotFound: no such post."""
    require_visible(session.get(Post, post_id) is not None, "post")
    return list(
        session.scalars(
            select(ShiftTemplate)
            .where(ShiftTemplate.post_id == post_id, ShiftTemplate.active.is_(True))
            .order_by(ShiftTemplate.weekday, ShiftTemplate.start_time)
        )
    )
