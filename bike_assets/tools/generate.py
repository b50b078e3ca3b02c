"""Sample-data generator: a realistic, deterministic BikeStores CSV export (the raw input)."""

import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

FIRST_DAY = np.datetime64("2022-01-01")
LAST_DAY = np.datetime64("2025-12-31")

FEMALE_NAMES = [
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah",
    "Karen", "Lisa", "Nancy", "Betty", "Margaret", "Sandra", "Ashley", "Kimberly", "Emily",
    "Donna", "Michelle", "Carol", "Amanda", "Dorothy", "Melissa", "Deborah", "Stephanie",
    "Rebecca", "Sharon", "Laura", "Cynthia", "Kathleen", "Amy", "Angela", "Shirley", "Anna",
    "Brenda", "Pamela", "Emma", "Nicole", "Helen", "Samantha", "Katherine", "Christine", "Debra",
    "Rachel", "Carolyn", "Janet", "Catherine", "Maria", "Heather", "Diane", "Ruth", "Julie",
    "Olivia", "Joyce", "Virginia", "Victoria", "Kelly", "Lauren", "Christina", "Joan", "Evelyn",
    "Judith", "Megan", "Andrea", "Cheryl", "Hannah", "Jacqueline", "Martha", "Gloria", "Teresa",
    "Kasha", "Tameka", "Charolette", "Lyndsey", "Latasha", "Genoveva", "Pamelia", "Bernita",
    "Zelma", "Araceli",
]  # fmt: skip
MALE_NAMES = [
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas",
    "Christopher", "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul",
    "Andrew", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Edward",
    "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen",
    "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Gregory", "Alexander", "Frank",
    "Patrick", "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Jose", "Adam", "Nathan",
    "Henry", "Douglas", "Zachary", "Peter", "Kyle", "Ethan", "Walter", "Noah", "Jeremy",
    "Christian", "Keith", "Roger", "Terry", "Austin", "Sean", "Gerald", "Carl", "Harold", "Dylan",
    "Arthur", "Daryl", "Deshawn", "Robby", "Lashawn",
]  # fmt: skip
UNUSUAL_NAMES = ["Zyx", "Quenby", "Brixlee", "Vondrell"]  # not in name lists: gender 'unknown'
FIRST_NAMES = FEMALE_NAMES + MALE_NAMES + UNUSUAL_NAMES
LAST_NAMES = [
    "Burks", "Todd", "Rice", "Stone", "Vargas", "Lyons", "Acevedo", "Moss", "Hansen", "Chan",
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
    "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera",
    "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz",
    "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy",
    "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed",
    "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez",
    "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez",
    "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster",
]  # fmt: skip
EMAIL_DOMAINS = ["yahoo.com", "gmail.com", "hotmail.com", "aol.com", "msn.com"]
STREET_NAMES = [
    "Thorne", "Vine", "Oak", "Maple", "Cedar", "Pine", "Elm", "Walnut", "Chestnut", "Highland",
    "Lake", "Hill", "Park", "Sunset", "Ridge", "Meadow", "Forest", "River", "Spring", "Valley",
    "Church", "Mill", "Market", "Union", "Lincoln", "Jefferson", "Madison", "Franklin",
    "Honey Creek", "Bay Meadows", "Golden Star", "Shady Lane", "Prospect", "Summit",
]  # fmt: skip
STREET_TYPES = ["Ave.", "St.", "Street", "Road", "Rd.", "Lane", "Dr.", "Court", "Blvd.", "Way"]

# state: (census region, share of customers)
STATES = {
    "CA": ("West", 22),
    "WA": ("West", 3),
    "OR": ("West", 2),
    "AZ": ("West", 2),
    "CO": ("West", 2),
    "UT": ("West", 1),
    "NY": ("Northeast", 20),
    "MA": ("Northeast", 4),
    "NJ": ("Northeast", 4),
    "CT": ("Northeast", 2),
    "PA": ("Northeast", 4),
    "NH": ("Northeast", 1),
    "RI": ("Northeast", 1),
    "TX": ("South", 15),
    "FL": ("South", 4),
    "GA": ("South", 2),
    "NC": ("South", 2),
    "VA": ("South", 1),
    "TN": ("South", 1),
    "IL": ("Midwest", 3),
    "OH": ("Midwest", 2),
    "MI": ("Midwest", 2),
    "MN": ("Midwest", 1),
    "WI": ("Midwest", 1),
    "MO": ("Midwest", 1),
}
CITIES = [  # (state, city, phone area code, lowest zip code)
    ("CA", "Sacramento", 916, 95820), ("CA", "San Jose", 408, 95127),
    ("CA", "San Diego", 619, 92111), ("CA", "Fresno", 559, 93706), ("CA", "Oakland", 510, 94601),
    ("CA", "Redondo Beach", 310, 90278), ("CA", "Campbell", 408, 95008),
    ("WA", "Seattle", 206, 98101), ("WA", "Spokane", 509, 99201), ("WA", "Tacoma", 253, 98402),
    ("OR", "Portland", 503, 97201), ("OR", "Eugene", 541, 97401), ("AZ", "Phoenix", 602, 85001),
    ("AZ", "Tucson", 520, 85701), ("CO", "Denver", 303, 80202),
    ("CO", "Colorado Springs", 719, 80903), ("UT", "Salt Lake City", 801, 84101),
    ("NY", "New York", 212, 10001), ("NY", "Brooklyn", 718, 11201),
    ("NY", "Forest Hills", 718, 11375), ("NY", "Jamaica", 718, 11432),
    ("NY", "Rochester", 585, 14606), ("NY", "Buffalo", 716, 14201),
    ("NY", "Ballston Spa", 518, 12020), ("NY", "Mount Vernon", 914, 10550),
    ("MA", "Boston", 617, 2108), ("MA", "Worcester", 508, 1602), ("MA", "Springfield", 413, 1103),
    ("NJ", "Newark", 973, 7102), ("NJ", "Jersey City", 201, 7302), ("NJ", "Trenton", 609, 8608),
    ("CT", "Hartford", 860, 6103), ("CT", "New Haven", 203, 6510),
    ("PA", "Philadelphia", 215, 19103), ("PA", "Pittsburgh", 412, 15222),
    ("NH", "Manchester", 603, 3101), ("RI", "Providence", 401, 2903),
    ("TX", "Houston", 713, 77016), ("TX", "Dallas", 214, 75201), ("TX", "Austin", 512, 78701),
    ("TX", "San Antonio", 210, 78205), ("TX", "Corpus Christi", 361, 78418),
    ("TX", "Amarillo", 806, 79106), ("TX", "San Angelo", 325, 76901), ("FL", "Miami", 305, 33101),
    ("FL", "Orlando", 407, 32801), ("FL", "Tampa", 813, 33602), ("GA", "Atlanta", 404, 30303),
    ("GA", "Savannah", 912, 31401), ("NC", "Charlotte", 704, 28202), ("NC", "Raleigh", 919, 27601),
    ("VA", "Richmond", 804, 23219), ("VA", "Arlington", 703, 22201),
    ("TN", "Nashville", 615, 37203), ("TN", "Memphis", 901, 38103), ("IL", "Chicago", 312, 60601),
    ("IL", "Naperville", 630, 60540), ("IL", "Springfield", 217, 62701),
    ("OH", "Columbus", 614, 43215), ("OH", "Cleveland", 216, 44113),
    ("OH", "Cincinnati", 513, 45202), ("MI", "Detroit", 313, 48226),
    ("MI", "Ann Arbor", 734, 48104), ("MN", "Minneapolis", 612, 55401),
    ("MN", "St. Paul", 651, 55101), ("WI", "Milwaukee", 414, 53202), ("WI", "Madison", 608, 53703),
    ("MO", "St. Louis", 314, 63101), ("MO", "Kansas City", 816, 64105),
]  # fmt: skip
# Customers mostly shop at the store of their region; Midwest customers pick any store (0).
HOME_STORE = {"West": 1, "Northeast": 2, "South": 3, "Midwest": 0}

STORES = pd.DataFrame(
    {
        "store_id": [1, 2, 3],
        "store_name": ["Santa Cruz Bikes", "Baldwin Bikes", "Rowlett Bikes"],
        "phone": ["(831) 476-4321", "(516) 379-8888", "(972) 530-5555"],
        "email": ["santacruz@bikes.shop", "baldwin@bikes.shop", "rowlett@bikes.shop"],
        "street": ["3700 Portola Drive", "4200 Chestnut Lane", "8000 Fairway Avenue"],
        "city": ["Santa Cruz", "Baldwin", "Rowlett"],
        "state": ["CA", "NY", "TX"],
        "zip_code": ["95060", "11432", "75088"],
    }
)
STAFFS = pd.DataFrame(
    [
        (1, "Fabiola", "Jackson", "fabiola.jackson@bikes.shop", "(831) 555-5554", 1, 1, pd.NA),
        (2, "Mireya", "Copeland", "mireya.copeland@bikes.shop", "(831) 555-5555", 1, 1, 1),
        (3, "Genna", "Serrano", "genna.serrano@bikes.shop", "(831) 555-5556", 1, 1, 2),
        (4, "Virgie", "Wiggins", "virgie.wiggins@bikes.shop", "(831) 555-5557", 1, 1, 2),
        (5, "Jannette", "David", "jannette.david@bikes.shop", "(516) 379-4444", 1, 2, 1),
        (6, "Marcelene", "Boyer", "marcelene.boyer@bikes.shop", "(516) 379-4445", 1, 2, 5),
        (7, "Venita", "Daniel", "venita.daniel@bikes.shop", "(516) 379-4446", 1, 2, 5),
        (8, "Kali", "Vargas", "kali.vargas@bikes.shop", "(972) 530-5555", 1, 3, 1),
        (9, "Layla", "Terrell", "layla.terrell@bikes.shop", "(972) 530-5556", 1, 3, 8),
        (10, "Bernardine", "Houston", "bernardine.houston@bikes.shop", "(972) 530-5557", 1, 3, 8),
    ],
    columns=[
        "staff_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "active",
        "store_id",
        "manager_id",
    ],
).astype({"manager_id": "Int64"})
SELLERS = np.array([[2, 3], [6, 7], [8, 9]])  # staff_ids taking orders, one row per store

BRANDS = [
    "Electra", "Haro", "Heller", "Pure Cycles", "Ritchey", "Strider", "Sun Bicycles", "Surly",
    "Trek",
]  # fmt: skip
MODELS = [
    "Townie", "Cruiser", "Marlin", "Fuel EX", "Domane", "Madone", "Shredder", "Flyer",
    "Timberwolf", "Ogre", "Pack Rat", "Straggler", "Shift", "Revolt", "Comfort", "Sport",
    "Balance", "Moto", "Crosstown", "Superfly",
]  # fmt: skip
# category_id 1..7: Children, Comfort, Cruisers, Cyclocross, Electric, Mountain, Road
CATEGORY_SHARE = [0.18, 0.10, 0.20, 0.05, 0.08, 0.25, 0.14]
CATEGORY_MEDIAN_PRICE = np.array([250, 550, 500, 1800, 4000, 1500, 2200])
N_PRODUCTS = 321

ORDER_STATUS_SHARE = [0.05, 0.05, 0.04, 0.86]  # 1 Pending, 2 Processing, 3 Rejected, 4 Completed
REQUIRED_DAYS = (2, 3)  # required_date is 2 or 3 days after order_date
SHIP_DAYS_SHARE = [0.15, 0.30, 0.30, 0.15, 0.10]  # shipped 0..4 days after order_date
LINES_SHARE = [0.15, 0.20, 0.30, 0.20, 0.15]  # 1..5 lines per order
QUANTITY_SHARE = [0.55, 0.40, 0.04, 0.01]  # 1..4 bikes per line
DISCOUNT_PERCENT = np.array([5, 7, 10, 20])

# For every file, its columns in header order and the SQL that formats each from the frame.
FILES = {
    "customers.csv": {
        "customer_id": "customer_id",
        "first_name": "first_name",
        "last_name": "last_name",
        "phone": "CASE WHEN has_phone THEN printf('(%d) %03d-%04d', area, exchange, line) END",
        "email": "lower(first_name || '.' || last_name || '@' || domain)",
        "street": "printf('%d %s %s', house, street_name, street_type)"
        " || if(trailing_space, ' ', '')",
        "city": "city",
        "state": "state",
        "zip_code": "lpad(zip::VARCHAR, 5, '0')",
    },
    "orders.csv": {
        "order_id": "order_id",
        "customer_id": "customer_id",
        "order_status": "order_status",
        "order_date": "order_date::DATE",
        "required_date": "required_date::DATE",
        "shipped_date": "shipped_date::DATE",
        "store_id": "store_id",
        "staff_id": "staff_id",
    },
    "order_items.csv": {
        "order_id": "order_id",
        "item_id": "item_id",
        "product_id": "product_id",
        "quantity": "quantity",
        "list_price": "(cents / 100)::DECIMAL(10, 2)",
        "discount": "(discount_percent / 100)::DECIMAL(3, 2)",
    },
    "stores.csv": {c: c for c in STORES.columns},
    "staffs.csv": {c: c for c in STAFFS.columns},
    "products.csv": {
        "product_id": "product_id",
        "product_name": "product_name",
        "brand_id": "brand_id",
        "category_id": "category_id",
        "model_year": "model_year",
        "list_price": "(cents / 100)::DECIMAL(10, 2)",
    },
}


def generate_export(
    out_dir: Path,
    customers: int,
    seed: int = 42,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Write a realistic BikeStores export (6 CSV files) into out_dir; return rows per file name.

    Files look like a SQL Server export: UTF-8 with a byte-order mark, CRLF line endings, a header
    row, missing values as the unquoted text NULL. `street` is always double-quoted (some streets
    keep a trailing space inside the quotes); any other field is quoted only when it contains a
    comma, a quote or a line break. The output depends only on (customers, seed).
    """
    total_steps = len(FILES) + 1
    rng = np.random.default_rng(seed)
    products = _products(rng)
    customer_frame, home_store = _customers(rng, customers)
    orders = _orders(rng, home_store)
    frames = {
        "customers.csv": customer_frame,
        "orders.csv": orders,
        "order_items.csv": _order_items(rng, len(orders), products["cents"].to_numpy()),
        "stores.csv": STORES,
        "staffs.csv": STAFFS,
        "products.csv": products,
    }
    if progress:
        progress("generate", 1, total_steps)

    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    with duckdb.connect() as con:
        con.execute("set enable_progress_bar = false")  # the caller shows its own
        for step, (name, columns) in enumerate(FILES.items(), start=2):
            con.register("frame", frames[name])
            counts[name] = _write_csv(con, columns, out_dir / name)
            con.unregister("frame")
            if progress:
                progress(name, step, total_steps)
    return counts


def _products(rng: np.random.Generator) -> pd.DataFrame:
    """The bike catalog: prices by category, mostly under 3000, all ending in .99."""
    n = N_PRODUCTS
    category = rng.choice(len(CATEGORY_SHARE), n, p=CATEGORY_SHARE) + 1
    price = CATEGORY_MEDIAN_PRICE[category - 1] * rng.lognormal(0.0, 0.6, n)
    brand = rng.integers(1, len(BRANDS) + 1, n)
    model = rng.integers(0, len(MODELS), n)
    trim = rng.integers(1, 10, n)
    year = rng.integers(2016, 2026, n)
    return pd.DataFrame(
        {
            "product_id": np.arange(1, n + 1),
            "product_name": [
                f"{BRANDS[b - 1]} {MODELS[m]} {t} - {y}"
                for b, m, t, y in zip(brand, model, trim, year, strict=True)
            ],
            "brand_id": brand,
            "category_id": category,
            "model_year": year,
            "cents": np.clip(np.floor(price), 89, 11999).astype(np.int64) * 100 + 99,
        }
    )


def _customers(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers as codes and numbers (turned into text in SQL), and each one's home store_id."""
    cities = pd.DataFrame(CITIES, columns=["state", "city", "area", "zip"])
    cities["region"] = cities["state"].map(lambda state: STATES[state][0])
    state_share = cities["state"].map(lambda state: STATES[state][1])
    share = state_share / cities.groupby("state")["city"].transform("size")
    cities = cities.astype({"state": "category", "city": "category", "region": "category"})
    home = cities.take(rng.choice(len(cities), n, p=share / share.sum()))
    home_store = home["region"].map(HOME_STORE).to_numpy(dtype=np.int64)
    home_store = np.where(home_store == 0, rng.integers(1, len(STORES) + 1, n), home_store)

    def pick(values: list[str]) -> pd.Categorical:
        return pd.Categorical.from_codes(rng.integers(0, len(values), n), categories=values)

    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "first_name": pick(FIRST_NAMES),
            "last_name": pick(LAST_NAMES),
            "has_phone": rng.random(n) < 0.12,
            "area": home["area"].to_numpy(),
            "exchange": rng.integers(200, 1000, n),
            "line": rng.integers(0, 10000, n),
            "domain": pick(EMAIL_DOMAINS),
            "house": rng.integers(1, 10000, n),
            "street_name": pick(STREET_NAMES),
            "street_type": pick(STREET_TYPES),
            "trailing_space": rng.random(n) < 0.15,
            "city": home["city"].to_numpy(),
            "state": home["state"].to_numpy(),
            "zip": home["zip"].to_numpy() + rng.integers(0, 20, n),
        }
    )
    return customers, home_store


def _orders(rng: np.random.Generator, home_store: np.ndarray) -> pd.DataFrame:
    """Orders in date order: 10% of customers have none, 35% one, the rest a long tail."""
    n = len(home_store)
    kind = rng.random(n)
    repeat_orders = 2 + rng.negative_binomial(0.8, 0.22, n)
    orders_per_customer = np.where(kind < 0.10, 0, np.where(kind < 0.45, 1, repeat_orders))
    customer = np.repeat(np.arange(1, n + 1), orders_per_customer)
    m = len(customer)
    day = rng.integers(0, (LAST_DAY - FIRST_DAY).astype(int) + 1, m)
    by_date = np.argsort(day, kind="stable")
    customer, order_date = customer[by_date], FIRST_DAY + day[by_date]

    # 15% of customers also shop elsewhere: half of their orders go to a random store.
    store = home_store[customer - 1]
    elsewhere = (rng.random(n) < 0.15)[customer - 1] & (rng.random(m) < 0.5)
    store = np.where(elsewhere, rng.integers(1, len(STORES) + 1, m), store)

    status = rng.choice(4, m, p=ORDER_STATUS_SHARE) + 1
    shipped = (status == 4) | ((status == 3) & (rng.random(m) < 0.5))
    ship_days = rng.choice(5, m, p=SHIP_DAYS_SHARE)
    return pd.DataFrame(
        {
            "order_id": np.arange(1, m + 1),
            "customer_id": customer,
            "order_status": status,
            "order_date": order_date,
            "required_date": order_date + rng.choice(REQUIRED_DAYS, m),
            "shipped_date": np.where(shipped, order_date + ship_days, np.datetime64("NaT")),
            "store_id": store,
            "staff_id": SELLERS[store - 1, rng.integers(0, SELLERS.shape[1], m)],
        }
    )


def _order_items(rng: np.random.Generator, n_orders: int, cents: np.ndarray) -> pd.DataFrame:
    """1-5 lines per order (3 on average), priced at the product's list price."""
    lines_per_order = rng.choice(len(LINES_SHARE), n_orders, p=LINES_SHARE) + 1
    order_id = np.repeat(np.arange(1, n_orders + 1), lines_per_order)
    n = len(order_id)
    first_line = np.repeat(np.cumsum(lines_per_order) - lines_per_order, lines_per_order)
    product = rng.integers(0, N_PRODUCTS, n)
    return pd.DataFrame(
        {
            "order_id": order_id,
            "item_id": np.arange(n) - first_line + 1,
            "product_id": product + 1,
            "quantity": rng.choice(len(QUANTITY_SHARE), n, p=QUANTITY_SHARE) + 1,
            "cents": cents[product],
            "discount_percent": DISCOUNT_PERCENT[rng.integers(0, len(DISCOUNT_PERCENT), n)],
        }
    )


def _write_csv(con: duckdb.DuckDBPyConnection, columns: dict[str, str], path: Path) -> int:
    """Write the registered `frame` as `path`: BOM and header row, then DuckDB's CRLF rows."""
    select = ", ".join(f"{sql} AS {name}" for name, sql in columns.items())
    body = path.with_name(path.name + ".body")
    options = "HEADER false, NULLSTR 'NULL', NEW_LINE '\\r\\n'"
    if "street" in columns:
        options += ", FORCE_QUOTE (street)"
    target = str(body).replace("'", "''")
    (rows,) = con.execute(f"COPY (SELECT {select} FROM frame) TO '{target}' ({options})").fetchone()
    with path.open("wb") as out, body.open("rb") as rows_file:
        out.write(("\ufeff" + ",".join(columns) + "\r\n").encode())
        shutil.copyfileobj(rows_file, out, 1 << 24)
    body.unlink()
    return rows
