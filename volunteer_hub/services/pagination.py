"""One way to page through any query."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session


def paginate(session: Session, query: Select[Any], page: int, page_size: int) -> dict[str, Any]:
    """Run `query` for one page; the total counts the same query without ordering."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = session.scalars(query.limit(page_size).offset((page - 1) * page_size)).all()
    return {"items": list(items), "total": total or 0, "page": page, "page_size": page_size}
