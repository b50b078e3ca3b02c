"""Tests of the sample-data generator, read back from the raw bytes and with the csv module."""

import csv
import re
from collections import defaultdict
from pathlib import Path

import pytest

from bike_assets.tools.generate import generate_export

CUSTOMERS = 400
HEADERS = {
    "customers.csv": "customer_id,first_name,last_name,phone,email,street,city,state,zip_code",
    "orders.csv": "order_id,customer_id,order_status,order_date,required_date,shipped_date,"
    "store_id,staff_id",
    "order_items.csv": "order_id,item_id,product_id,quantity,list_price,discount",
    "stores.csv": "store_id,store_name,phone,email,street,city,state,zip_code",
    "staffs.csv": "staff_id,first_name,last_name,email,phone,active,store_id,manager_id",
    "products.csv": "product_id,product_name,brand_id,category_id,model_year,list_price",
}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("raw")
    generate_export(out_dir, CUSTOMERS, seed=7)
    return out_dir


def read(out_dir: Path, name: str) -> list[dict[str, str]]:
    with (out_dir / name).open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_files_start_with_bom_and_header_and_use_crlf(export: Path) -> None:
    for name, header in HEADERS.items():
        raw = (export / name).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf" + header.encode() + b"\r\n"), name
        assert raw.count(b"\n") == raw.count(b"\r\n") > 1, name
        assert raw.endswith(b"\r\n"), name


def test_returned_counts_and_progress(tmp_path: Path) -> None:
    steps = []
    counts = generate_export(tmp_path, 50, progress=lambda *step: steps.append(step))
    assert counts == {name: len(read(tmp_path, name)) for name in HEADERS}
    assert counts["customers.csv"] == 50
    assert steps[-1][1] == steps[-1][2]


def test_missing_values_are_null_text(export: Path) -> None:
    customers = read(export, "customers.csv")
    phones = [c["phone"] for c in customers]
    assert 0.75 < phones.count("NULL") / len(phones) < 0.97
    assert all(re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", p) for p in phones if p != "NULL")
    assert "NULL" in {o["shipped_date"] for o in read(export, "orders.csv")}
    assert [s["manager_id"] for s in read(export, "staffs.csv")].count("NULL") == 1
    assert b'"NULL"' not in (export / "orders.csv").read_bytes()


def test_streets_are_quoted_and_some_keep_a_trailing_space(export: Path) -> None:
    raw = (export / "customers.csv").read_bytes().decode("utf-8-sig")
    assert re.search(r',"\d+ [^"]+ ",', raw)
    streets = [c["street"] for c in read(export, "customers.csv")]
    assert raw.count(',"') >= len(streets)
    assert 0 < sum(s.endswith(" ") for s in streets) < len(streets)


def test_customer_fields(export: Path) -> None:
    customers = read(export, "customers.csv")
    assert all(re.fullmatch(r"\d{5}", c["zip_code"]) for c in customers)
    assert any(c["zip_code"].startswith("0") for c in customers)
    assert len({c["state"] for c in customers}) >= 15
    for c in customers:
        assert c["email"].startswith(f"{c['first_name']}.{c['last_name']}@".lower())


def test_order_statuses_and_dates(export: Path) -> None:
    orders = read(export, "orders.csv")
    assert {o["order_status"] for o in orders} == {"1", "2", "3", "4"}
    late = 0
    for o in orders:
        assert "2022-01-01" <= o["order_date"] <= "2025-12-31"
        assert o["required_date"] > o["order_date"]
        if o["order_status"] in ("1", "2"):
            assert o["shipped_date"] == "NULL"
        elif o["order_status"] == "4":
            assert o["shipped_date"] >= o["order_date"]
            late += o["shipped_date"] > o["required_date"]
    assert 0 < late < len(orders) / 2


def test_keys_are_unique_and_referentially_valid(export: Path) -> None:
    customers = {c["customer_id"] for c in read(export, "customers.csv")}
    stores = {s["store_id"] for s in read(export, "stores.csv")}
    staff_store = {s["staff_id"]: s["store_id"] for s in read(export, "staffs.csv")}
    products = {p["product_id"] for p in read(export, "products.csv")}
    orders = read(export, "orders.csv")
    items = read(export, "order_items.csv")

    assert len(customers) == CUSTOMERS and len(stores) >= 3
    assert [int(o["order_id"]) for o in orders] == list(range(1, len(orders) + 1))
    for o in orders:
        assert o["customer_id"] in customers and o["store_id"] in stores
        assert staff_store[o["staff_id"]] == o["store_id"]
    lines = defaultdict(list)
    for i in items:
        lines[i["order_id"]].append(int(i["item_id"]))
        assert i["product_id"] in products
    assert set(lines) == {o["order_id"] for o in orders}
    assert all(ids == list(range(1, len(ids) + 1)) and len(ids) <= 5 for ids in lines.values())


def test_customers_with_no_orders_and_with_several_stores(export: Path) -> None:
    stores_of = defaultdict(set)
    for o in read(export, "orders.csv"):
        stores_of[o["customer_id"]].add(o["store_id"])
    assert CUSTOMERS - len(stores_of) >= CUSTOMERS * 0.05
    assert sum(len(s) > 1 for s in stores_of.values()) >= CUSTOMERS * 0.02


def test_order_item_values(export: Path) -> None:
    items = read(export, "order_items.csv")
    prices = {p["product_id"]: p["list_price"] for p in read(export, "products.csv")}
    assert {i["discount"] for i in items} <= {"0.05", "0.07", "0.10", "0.20"}
    for i in items:
        assert i["list_price"] == prices[i["product_id"]]
        assert re.fullmatch(r"\d+\.\d\d", i["list_price"])
        assert int(i["quantity"]) >= 1


def test_same_seed_same_bytes_other_seed_other_bytes(export: Path, tmp_path: Path) -> None:
    generate_export(tmp_path / "same", CUSTOMERS, seed=7)
    generate_export(tmp_path / "other", CUSTOMERS, seed=8)
    for name in HEADERS:
        assert (tmp_path / "same" / name).read_bytes() == (export / name).read_bytes()
    assert (tmp_path / "other" / "orders.csv").read_bytes() != (export / "orders.csv").read_bytes()
