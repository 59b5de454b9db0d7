"""The demo warehouse: a deterministic retail/SaaS DuckDB database for the embedded default.

Everything is generated inside DuckDB with set-based SQL. Randomness comes from `hash()` of a
purpose tag and a row key, never from `random()`: hash values do not depend on thread scheduling
or on the order rows flow through the plan, so two builds produce the same rows (the tests compare
table checksums). Row ids are assigned with `row_number()` over a total order for the same reason.

The data spans two years ending on a fixed day (`DEMO_LAST_DAY`), with a growth trend, yearly and
weekly seasonality, multiplicative noise and the deviations listed in `DEMO_ANOMALIES`, which
alert tests and benchmarks use as their ground truth.
"""

import hashlib
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import duckdb
import structlog
from django.conf import settings

from apps.accounts.models import Organization, User
from apps.connections.models import CatalogueStatus, Connection, Engine

logger = structlog.get_logger(__name__)

DEMO_WAREHOUSE_FILENAME = "demo_warehouse.duckdb"
DEMO_FIRST_DAY = date(2024, 11, 1)
DEMO_LAST_DAY = date(2026, 10, 31)
# Customers signed up before the order history starts, so the first days already have buyers.
_FIRST_SIGNUP_DAY = date(2022, 1, 1)

DEMO_TABLES = (
    "regions",
    "categories",
    "products",
    "customers",
    "orders",
    "order_items",
    "daily_revenue",
    "daily_traffic",
)


@dataclass(frozen=True)
class InjectedAnomaly:
    """A deviation built into the demo data on purpose, for alerts to find.

    `factor` multiplies the value the generator would otherwise have produced, on every day from
    `first_day` to `last_day` inclusive. For `daily_revenue` the factor scales the number of orders
    placed (so orders, order_items and daily_revenue all agree); for `daily_traffic` it scales
    visits, and what is derived from visits (unique visitors, signups, paid-search spend).
    """

    name: str
    kind: Literal["drop", "spike", "level_shift"]
    table: Literal["daily_revenue", "daily_traffic"]
    column: str
    first_day: date
    last_day: date
    factor: float
    region: str | None = None  # regions.name; None means every region
    channel: str | None = None  # daily_traffic.channel; None means every channel
    description: str = ""


DEMO_ANOMALIES: tuple[InjectedAnomaly, ...] = (
    InjectedAnomaly(
        name="eu_payment_outage",
        kind="drop",
        table="daily_revenue",
        column="revenue",
        first_day=date(2025, 8, 12),
        last_day=date(2025, 8, 12),
        factor=0.25,
        region="Europe",
        description="European payment provider outage: Europe's orders fall to a quarter for a day.",
    ),
    InjectedAnomaly(
        name="paid_search_suspended",
        kind="drop",
        table="daily_traffic",
        column="visits",
        first_day=date(2026, 1, 6),
        last_day=date(2026, 1, 8),
        factor=0.1,
        channel="paid_search",
        description="Ads account suspended for three days: paid-search visits fall to a tenth.",
    ),
    InjectedAnomaly(
        name="checkout_outage",
        kind="drop",
        table="daily_revenue",
        column="revenue",
        first_day=date(2026, 3, 17),
        last_day=date(2026, 3, 17),
        factor=0.4,
        description="Checkout outage in every region: orders fall to 40 % for a day.",
    ),
    InjectedAnomaly(
        name="viral_social_post",
        kind="spike",
        table="daily_traffic",
        column="visits",
        first_day=date(2026, 5, 20),
        last_day=date(2026, 5, 20),
        factor=5.0,
        channel="social",
        description="A post goes viral: social visits are five times the usual for a day.",
    ),
    InjectedAnomaly(
        name="apac_marketplace_launch",
        kind="level_shift",
        table="daily_revenue",
        column="revenue",
        first_day=date(2026, 7, 1),
        last_day=DEMO_LAST_DAY,
        factor=1.6,
        region="Asia Pacific",
        description="Marketplace partner launch: Asia Pacific's orders are 60 % higher from this day on.",
    ),
    InjectedAnomaly(
        name="north_america_flash_sale",
        kind="spike",
        table="daily_revenue",
        column="revenue",
        first_day=date(2026, 9, 15),
        last_day=date(2026, 9, 15),
        factor=2.5,
        region="North America",
        description="Unannounced flash sale: North America's orders are 2.5 times the usual for a day.",
    ),
)

# Dimension data ------------------------------------------------------------------------------

# (region_id, name, code, share of orders and customers, ((country, share within region), ...))
_REGIONS: tuple[tuple[int, str, str, float, tuple[tuple[str, float], ...]], ...] = (
    (1, "North America", "NA", 0.40, (("United States", 0.82), ("Canada", 0.18))),
    (
        2,
        "Europe",
        "EU",
        0.32,
        (
            ("United Kingdom", 0.22),
            ("Germany", 0.22),
            ("France", 0.17),
            ("Spain", 0.10),
            ("Italy", 0.10),
            ("Netherlands", 0.08),
            ("Sweden", 0.06),
            ("Poland", 0.05),
        ),
    ),
    (
        3,
        "Asia Pacific",
        "APAC",
        0.20,
        (
            ("Japan", 0.28),
            ("Australia", 0.24),
            ("India", 0.20),
            ("South Korea", 0.12),
            ("Singapore", 0.10),
            ("New Zealand", 0.06),
        ),
    ),
    (
        4,
        "Latin America",
        "LATAM",
        0.08,
        (("Brazil", 0.42), ("Mexico", 0.30), ("Argentina", 0.10), ("Chile", 0.10), ("Colombia", 0.08)),
    ),
)

# (name, sku prefix, description, gross margin, ((product noun, base price), ...) x10, variants x6)
_CATEGORIES: tuple[
    tuple[str, str, str, float, tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]], ...
] = (
    (
        "Electronics",
        "ELE",
        "Consumer electronics: audio, wearables, computer accessories, tablets.",
        0.25,
        (
            ("Wireless Headphones", 120),
            ("Bluetooth Speaker", 70),
            ("Smartwatch", 220),
            ("Fast Charger", 25),
            ("Mechanical Keyboard", 95),
            ("HD Webcam", 60),
            ("Tablet", 380),
            ("E-Reader", 130),
            ("Power Bank", 35),
            ("Wireless Mouse", 30),
        ),
        (("Basic", 0.7), ("Mini", 0.85), ("Plus", 1.0), ("Pro", 1.4), ("Max", 1.7), ("Ultra", 2.1)),
    ),
    (
        "Books",
        "BOO",
        "Printed books: fiction, non-fiction, guides and children's books.",
        0.35,
        (
            ("Cookbook", 28),
            ("Mystery Novel", 16),
            ("Science Fiction Novel", 17),
            ("Biography", 24),
            ("Travel Guide", 22),
            ("Picture Book", 14),
            ("Business Handbook", 32),
            ("Poetry Anthology", 18),
            ("World Atlas", 45),
            ("Language Course", 38),
        ),
        (
            ("Pocket", 0.6),
            ("Paperback", 0.8),
            ("Large Print", 1.0),
            ("Hardcover", 1.3),
            ("Illustrated", 1.5),
            ("Collector's", 2.2),
        ),
    ),
    (
        "Home & Kitchen",
        "HOM",
        "Cookware, small appliances, furnishings and storage for the home.",
        0.45,
        (
            ("Chef's Knife", 55),
            ("Cast Iron Skillet", 45),
            ("Coffee Grinder", 65),
            ("Blender", 90),
            ("Bath Towel Set", 40),
            ("Table Lamp", 50),
            ("Storage Basket", 20),
            ("Cookware Set", 180),
            ("Electric Kettle", 40),
            ("Cutting Board", 25),
        ),
        (
            ("Compact", 0.75),
            ("Eco", 0.9),
            ("Classic", 1.0),
            ("Family", 1.25),
            ("Deluxe", 1.5),
            ("Premium", 1.9),
        ),
    ),
    (
        "Sports & Outdoors",
        "SPO",
        "Fitness equipment, outdoor and camping gear, sports accessories.",
        0.40,
        (
            ("Yoga Mat", 30),
            ("Running Shoes", 110),
            ("Camping Tent", 190),
            ("Water Bottle", 18),
            ("Dumbbell Set", 85),
            ("Cycling Helmet", 60),
            ("Hiking Backpack", 95),
            ("Tennis Racket", 120),
            ("Sleeping Bag", 75),
            ("Fitness Tracker", 80),
        ),
        (("Junior", 0.7), ("Lite", 0.85), ("Classic", 1.0), ("Trail", 1.2), ("Pro", 1.5), ("Elite", 2.0)),
    ),
    (
        "Toys & Games",
        "TOY",
        "Toys, board and card games, puzzles and creative kits.",
        0.45,
        (
            ("Building Blocks", 40),
            ("Board Game", 35),
            ("Jigsaw Puzzle", 20),
            ("Plush Bear", 18),
            ("Remote Control Car", 55),
            ("Dollhouse", 90),
            ("Science Kit", 35),
            ("Card Game", 12),
            ("Wooden Train", 45),
            ("Art Set", 25),
        ),
        (
            ("Travel", 0.7),
            ("Starter", 0.85),
            ("Classic", 1.0),
            ("Family", 1.2),
            ("Deluxe", 1.5),
            ("Mega", 2.0),
        ),
    ),
    (
        "Beauty",
        "BEA",
        "Skin care, hair care, fragrance and grooming.",
        0.60,
        (
            ("Face Serum", 35),
            ("Moisturiser", 25),
            ("Shampoo", 12),
            ("Lip Balm", 6),
            ("Eau de Parfum", 75),
            ("Hair Dryer", 65),
            ("Sunscreen", 15),
            ("Body Lotion", 14),
            ("Nail Care Kit", 22),
            ("Beard Oil", 18),
        ),
        (
            ("Travel", 0.6),
            ("Daily", 0.85),
            ("Natural", 1.0),
            ("Sensitive", 1.1),
            ("Intense", 1.3),
            ("Luxe", 1.9),
        ),
    ),
    (
        "Clothing",
        "CLO",
        "Apparel and footwear for women, men and children.",
        0.55,
        (
            ("T-Shirt", 20),
            ("Hoodie", 45),
            ("Jeans", 60),
            ("Rain Jacket", 95),
            ("Sneakers", 80),
            ("Wool Sweater", 70),
            ("Summer Dress", 55),
            ("Chinos", 50),
            ("Beanie", 15),
            ("Socks Pack", 12),
        ),
        (
            ("Essential", 0.7),
            ("Relaxed", 0.9),
            ("Classic", 1.0),
            ("Slim", 1.05),
            ("Organic", 1.3),
            ("Winter", 1.45),
        ),
    ),
    (
        "Office",
        "OFF",
        "Office furniture, desk accessories, paper and writing supplies.",
        0.40,
        (
            ("Notebook", 8),
            ("Gel Pen Set", 9),
            ("Desk Organizer", 25),
            ("Ergonomic Chair", 320),
            ("Standing Desk", 450),
            ("Monitor Arm", 110),
            ("Stapler", 14),
            ("Whiteboard", 60),
            ("Weekly Planner", 16),
            ("Laptop Stand", 45),
        ),
        (
            ("Basic", 0.7),
            ("Recycled", 0.85),
            ("Compact", 0.95),
            ("Studio", 1.15),
            ("Premium", 1.5),
            ("Executive", 2.0),
        ),
    ),
)

# (channel, share of visits, signup rate, bounce rate, seconds per session, cost per click)
_TRAFFIC_CHANNELS: tuple[tuple[str, float, float, float, int, float], ...] = (
    ("organic_search", 0.34, 0.006, 0.42, 190, 0.0),
    ("paid_search", 0.22, 0.009, 0.48, 150, 0.85),
    ("direct", 0.18, 0.011, 0.35, 240, 0.0),
    ("social", 0.12, 0.004, 0.62, 95, 0.0),
    ("email", 0.08, 0.014, 0.30, 260, 0.0),
    ("referral", 0.06, 0.008, 0.40, 200, 0.0),
)

_FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Sophia", "Mateo", "Mia", "Ethan",
    "Amelia", "Hugo", "Isabella", "Leon", "Chloe", "Arjun", "Hana", "Kenji", "Priya", "Diego",
    "Sofia", "Jonas", "Elena", "Marco", "Yuki", "Wei", "Aisha", "Omar", "Lea", "Felix",
    "Camila", "Gabriel", "Nora", "Samuel", "Zoe", "Daniel", "Ingrid", "Pablo", "Maya", "Ravi",
    "Julia", "Thomas", "Clara", "Mohammed", "Laura", "Oscar", "Ana", "Jakub", "Emily", "Min-jun",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Johnson", "Garcia", "Martinez", "Brown", "Miller", "Davis", "Wilson", "Anderson",
    "Taylor", "Thomas", "Moore", "Martin", "Lee", "Walker", "Hall", "Young", "King", "Wright",
    "Lopez", "Hill", "Green", "Baker", "Adams", "Nelson", "Muller", "Schmidt", "Dubois", "Rossi",
    "Ferrari", "Fernandez", "Silva", "Santos", "Kowalski", "Nowak", "Jansen", "de Vries",
    "Andersson", "Nilsson", "Tanaka", "Suzuki", "Sato", "Kim", "Park", "Chen", "Wang", "Singh",
    "Patel", "Kumar", "Novak",
)  # fmt: skip
# Reserved example domains (RFC 2606): the addresses look real but can never reach anyone.
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")

# Catalogue text ------------------------------------------------------------------------------

# What the LLM reads about each table and column; `COMMENT ON` stores it in the file itself.
DEMO_COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "regions": (
        "Sales regions. Every customer, order and daily_revenue row belongs to exactly one region.",
        {
            "region_id": "Primary key.",
            "name": "Region name: North America, Europe, Asia Pacific or Latin America.",
            "code": "Short region code: NA, EU, APAC or LATAM.",
        },
    ),
    "categories": (
        "Product categories, such as Electronics, Books, Home & Kitchen, Sports & Outdoors, Toys & Games.",
        {
            "category_id": "Primary key.",
            "name": "Category name.",
            "description": "What the category contains.",
        },
    ),
    "products": (
        "The product catalogue: one row per sellable product, with its current list price and unit cost.",
        {
            "product_id": "Primary key.",
            "sku": "Stock keeping unit, unique: category prefix and a number, e.g. ELE-0042.",
            "name": "Product name shown to customers, e.g. 'Pro Wireless Headphones'.",
            "category_id": "The product's category (references categories.category_id).",
            "price": "Current list price per unit, in USD. Prices rose about 5 % on 2026-01-01.",
            "cost": "Unit cost to the company, in USD; price minus cost is the gross profit per unit.",
            "is_active": "False for discontinued products, which still appear in past orders.",
        },
    ),
    "customers": (
        "Customer accounts (consumers and businesses), one row per account.",
        {
            "customer_id": "Primary key; increases with signup_date.",
            "name": "Customer's full name. Personal data.",
            "email": "Customer's email address, unique. Personal data: do not display in bulk.",
            "country": "Country of the billing address.",
            "region_id": "Region of the customer's country (references regions.region_id).",
            "segment": "Customer segment: Consumer, SMB (small and medium business) or Enterprise.",
            "plan": "Subscription plan: Free, Starter, Pro or Enterprise.",
            "signup_date": "Day the account was created.",
            "marketing_opt_in": "True if the customer agreed to receive marketing email.",
        },
    ),
    "orders": (
        "Customer orders, one row per order (the order header; its lines are in order_items). "
        "Revenue counts only orders with status 'completed'.",
        {
            "order_id": "Primary key; increases with order_date.",
            "customer_id": "Customer who placed the order (references customers.customer_id).",
            "order_date": "When the order was placed (UTC).",
            "status": "completed, refunded (paid then fully refunded) or cancelled (never paid).",
            "channel": "Where the order was placed: web, mobile (the app) or partner (marketplaces).",
            "region_id": "Region the order was placed in, the customer's region (references regions).",
            "total_amount": "Order value in USD after discounts: the sum of its order_items lines, "
            "quantity * unit_price * (1 - discount), each rounded to cents.",
        },
    ),
    "order_items": (
        "Order lines: one row per product in an order.",
        {
            "order_item_id": "Primary key.",
            "order_id": "The order this line belongs to (references orders.order_id).",
            "product_id": "The product sold (references products.product_id).",
            "quantity": "Units of the product in this line, at least 1.",
            "unit_price": "List price per unit in USD when the order was placed, before discount.",
            "discount": "Discount as a fraction of the line's list value: 0.15 means 15 % off.",
        },
    ),
    "daily_revenue": (
        "Daily sales per region, aggregated from orders and order_items: one row per day and region, "
        "including days without sales. The quickest source for revenue trends.",
        {
            "date": "Calendar day (UTC) the orders were placed.",
            "region_id": "Region (references regions.region_id).",
            "revenue": "Sum of total_amount of the day's completed orders, in USD.",
            "orders": "Number of completed orders placed that day.",
            "units": "Units sold in the day's completed orders.",
            "average_order_value": "revenue / orders in USD; NULL on a day without completed orders.",
            "refunded_amount": "Sum of total_amount of orders placed that day and later refunded, in USD.",
            "new_customers": "Customers whose first order (any status) was placed that day.",
        },
    ),
    "daily_traffic": (
        "Website and app traffic per day and marketing channel, from web analytics: one row per day "
        "and channel.",
        {
            "date": "Calendar day (UTC).",
            "channel": "Marketing channel the visits came from: organic_search, paid_search, direct, "
            "social, email or referral (not the same list as orders.channel).",
            "visits": "Sessions started that day.",
            "unique_visitors": "Distinct visitors that day.",
            "signups": "Free accounts registered that day; only some go on to become customers.",
            "bounce_rate": "Share of visits that viewed a single page, between 0 and 1.",
            "avg_session_seconds": "Average visit length in seconds.",
            "ad_spend": "Ad spend in USD attributed to the channel that day, 0 for unpaid channels.",
        },
    ),
}

# SQL -----------------------------------------------------------------------------------------

_SCHEMA_SQL = """
CREATE TABLE regions (
    region_id INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    code VARCHAR NOT NULL UNIQUE
);
CREATE TABLE categories (
    category_id INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    description VARCHAR NOT NULL
);
CREATE TABLE products (
    product_id INTEGER PRIMARY KEY,
    sku VARCHAR NOT NULL UNIQUE,
    name VARCHAR NOT NULL,
    category_id INTEGER NOT NULL REFERENCES categories (category_id),
    price DECIMAL(12, 2) NOT NULL CHECK (price > 0),
    cost DECIMAL(12, 2) NOT NULL CHECK (cost > 0),
    is_active BOOLEAN NOT NULL
);
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL,
    email VARCHAR NOT NULL UNIQUE,
    country VARCHAR NOT NULL,
    region_id INTEGER NOT NULL REFERENCES regions (region_id),
    segment VARCHAR NOT NULL CHECK (segment IN ('Consumer', 'SMB', 'Enterprise')),
    plan VARCHAR NOT NULL CHECK (plan IN ('Free', 'Starter', 'Pro', 'Enterprise')),
    signup_date DATE NOT NULL,
    marketing_opt_in BOOLEAN NOT NULL
);
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    order_date TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('completed', 'refunded', 'cancelled')),
    channel VARCHAR NOT NULL CHECK (channel IN ('web', 'mobile', 'partner')),
    region_id INTEGER NOT NULL REFERENCES regions (region_id),
    total_amount DECIMAL(12, 2) NOT NULL
);
CREATE TABLE order_items (
    order_item_id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (order_id),
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price DECIMAL(12, 2) NOT NULL,
    discount DECIMAL(4, 2) NOT NULL CHECK (discount >= 0 AND discount < 1)
);
CREATE TABLE daily_revenue (
    date DATE NOT NULL,
    region_id INTEGER NOT NULL REFERENCES regions (region_id),
    revenue DECIMAL(12, 2) NOT NULL,
    orders INTEGER NOT NULL,
    units INTEGER NOT NULL,
    average_order_value DECIMAL(12, 2),
    refunded_amount DECIMAL(12, 2) NOT NULL,
    new_customers INTEGER NOT NULL,
    PRIMARY KEY (date, region_id)
);
CREATE TABLE daily_traffic (
    date DATE NOT NULL,
    channel VARCHAR NOT NULL CHECK (
        channel IN ('organic_search', 'paid_search', 'direct', 'social', 'email', 'referral')
    ),
    visits INTEGER NOT NULL,
    unique_visitors INTEGER NOT NULL,
    signups INTEGER NOT NULL,
    bounce_rate DECIMAL(5, 4) NOT NULL,
    avg_session_seconds INTEGER NOT NULL,
    ad_spend DECIMAL(12, 2) NOT NULL,
    PRIMARY KEY (date, channel)
);
"""

# Staging for the dimension data above, filled from Python; TEMP objects never reach the file.
# rnd() is a uniform draw in [0, 1) keyed by a purpose tag and a row key. hash(tag, seed) alone
# only combines the two hashes, so draws for different tags of one row come out ~97 % correlated;
# hashing that again mixes the bits and makes them independent.
_STAGING_SQL = """
CREATE TEMP MACRO rnd(tag, seed) AS (CAST(hash(hash(tag, seed)) >> 11 AS DOUBLE) / 9007199254740992.0);
CREATE TEMP TABLE src_regions (region_id INTEGER, name VARCHAR, code VARCHAR, share DOUBLE,
                               lo DOUBLE, hi DOUBLE);
CREATE TEMP TABLE src_countries (region_id INTEGER, country VARCHAR, lo DOUBLE, hi DOUBLE);
CREATE TEMP TABLE src_categories (category_id INTEGER, name VARCHAR, code VARCHAR,
                                  description VARCHAR, margin DOUBLE);
CREATE TEMP TABLE src_products (category_id INTEGER, noun_idx INTEGER, noun VARCHAR,
                                base_price DOUBLE, variant_idx INTEGER, variant VARCHAR,
                                multiplier DOUBLE);
CREATE TEMP TABLE src_channels (channel VARCHAR, share DOUBLE, signup_rate DOUBLE,
                                bounce_rate DOUBLE, session_seconds INTEGER, cpc DOUBLE);
CREATE TEMP TABLE src_first_names (idx INTEGER, name VARCHAR);
CREATE TEMP TABLE src_last_names (idx INTEGER, name VARCHAR);
CREATE TEMP TABLE src_domains (idx INTEGER, domain VARCHAR);
CREATE TEMP TABLE src_anomalies (target VARCHAR, first_day DATE, last_day DATE, factor DOUBLE,
                                 region VARCHAR, channel VARCHAR);
"""

_N_CUSTOMERS = 60_000
_N_PRODUCTS = sum(len(nouns) * len(variants) for *_, nouns, variants in _CATEGORIES)
# Orders on a typical weekday at the start, before region shares; ~300k orders over two years.
_BASE_ORDERS_PER_DAY = 290
_BASE_VISITS_PER_DAY = 30_000
_ORDER_GROWTH_PER_YEAR = 1.45
_TRAFFIC_GROWTH_PER_YEAR = 1.35
# Monday first, indexed by isodow() in SQL: many buyers are businesses, so weekends are quieter.
_ORDER_WEEKDAY_FACTORS = [1.05, 1.08, 1.06, 1.03, 0.95, 0.72, 0.68]
_TRAFFIC_WEEKDAY_FACTORS = [1.04, 1.06, 1.05, 1.02, 0.96, 0.80, 0.78]
_SIGNUP_SPAN_DAYS = (DEMO_LAST_DAY - _FIRST_SIGNUP_DAY).days + 1

_GENERATION_STEPS: tuple[str, ...] = (
    f"""
    CREATE TEMP TABLE calendar AS
    SELECT CAST(g.ts AS DATE) AS day,
           CAST(datediff('day', DATE '{DEMO_FIRST_DAY}', CAST(g.ts AS DATE)) AS INTEGER) AS t,
           isodow(g.ts) AS dow,
           -- Yearly seasonality peaking in mid-December, lowest in mid-June.
           1 + 0.12 * cos(2 * pi() * (dayofyear(g.ts) - 350) / 365.25) AS yearly
    FROM range(TIMESTAMP '{DEMO_FIRST_DAY}', TIMESTAMP '{DEMO_LAST_DAY}' + INTERVAL 1 DAY,
               INTERVAL 1 DAY) AS g(ts)
    """,
    """
    INSERT INTO regions SELECT region_id, name, code FROM src_regions ORDER BY region_id
    """,
    """
    INSERT INTO categories SELECT category_id, name, description FROM src_categories
    ORDER BY category_id
    """,
    # Product ids are shuffled across categories, as a catalogue grown over time would be.
    """
    CREATE TEMP TABLE product_seed AS
    SELECT row_number() OVER (ORDER BY rnd('product_id', p.seed), p.seed) AS product_id, p.*
    FROM (
        SELECT p.*, c.code, c.margin, p.category_id * 100 + p.noun_idx * 10 + p.variant_idx AS seed
        FROM src_products p JOIN src_categories c USING (category_id)
    ) AS p
    """,
    """
    INSERT INTO products
    SELECT product_id,
           code || '-' || lpad(CAST(product_id AS VARCHAR), 4, '0'),
           variant || ' ' || noun,
           category_id,
           CAST(greatest(round(base_price * multiplier * (0.9 + 0.2 * rnd('price', seed))), 2) - 0.01
                AS DECIMAL(12, 2)),
           CAST(round((greatest(round(base_price * multiplier * (0.9 + 0.2 * rnd('price', seed))), 2)
                       - 0.01) * (1 - margin) * (0.9 + 0.2 * rnd('cost', seed)), 2) AS DECIMAL(12, 2)),
           rnd('active', seed) >= 0.05
    FROM product_seed ORDER BY product_id
    """,
    # Popularity is a second, independent shuffle: best sellers come from every category.
    """
    CREATE TEMP TABLE product_pick AS
    SELECT row_number() OVER (ORDER BY rnd('popularity', product_id), product_id) - 1 AS pick,
           product_id, price
    FROM products
    """,
    # Signup days follow the same exponential growth as orders (inverse CDF of the density).
    f"""
    CREATE TEMP TABLE customer_seed AS
    SELECT g.i,
           DATE '{_FIRST_SIGNUP_DAY}' + CAST(floor(
               ln(1 + rnd('signup', g.i) * (pow({_ORDER_GROWTH_PER_YEAR}, {_SIGNUP_SPAN_DAYS} / 365.0) - 1))
               / ln({_ORDER_GROWTH_PER_YEAR}) * 365) AS INTEGER) AS signup_date,
           rnd('region', g.i) AS u_region,
           rnd('country', g.i) AS u_country,
           rnd('segment', g.i) AS u_segment,
           rnd('plan', g.i) AS u_plan,
           rnd('opt_in', g.i) < 0.58 AS marketing_opt_in,
           CAST(floor(rnd('first_name', g.i) * {len(_FIRST_NAMES)}) AS INTEGER) AS first_idx,
           CAST(floor(rnd('last_name', g.i) * {len(_LAST_NAMES)}) AS INTEGER) AS last_idx,
           CAST(floor(rnd('domain', g.i) * {len(_EMAIL_DOMAINS)}) AS INTEGER) AS domain_idx
    FROM range({_N_CUSTOMERS}) AS g(i)
    """,
    """
    INSERT INTO customers
    SELECT customer_id, first_name || ' ' || last_name,
           lower(first_name) || '.' || lower(replace(last_name, ' ', '')) || CAST(customer_id AS VARCHAR)
               || '@' || domain,
           country, region_id, segment,
           CASE segment
               WHEN 'Consumer' THEN CASE WHEN u_plan < 0.45 THEN 'Free' WHEN u_plan < 0.85 THEN 'Starter'
                                         ELSE 'Pro' END
               WHEN 'SMB' THEN CASE WHEN u_plan < 0.35 THEN 'Starter' WHEN u_plan < 0.9 THEN 'Pro'
                                    ELSE 'Enterprise' END
               ELSE CASE WHEN u_plan < 0.2 THEN 'Pro' ELSE 'Enterprise' END
           END,
           signup_date, marketing_opt_in
    FROM (
        SELECT row_number() OVER (ORDER BY s.signup_date, s.i) AS customer_id,
               f.name AS first_name, l.name AS last_name, d.domain,
               c.country, r.region_id,
               CASE WHEN s.u_segment < 0.72 THEN 'Consumer' WHEN s.u_segment < 0.93 THEN 'SMB'
                    ELSE 'Enterprise' END AS segment,
               s.u_plan, s.signup_date, s.marketing_opt_in
        FROM customer_seed s
        JOIN src_regions r ON s.u_region >= r.lo AND s.u_region < r.hi
        JOIN src_countries c ON c.region_id = r.region_id AND s.u_country >= c.lo AND s.u_country < c.hi
        JOIN src_first_names f ON f.idx = s.first_idx
        JOIN src_last_names l ON l.idx = s.last_idx
        JOIN src_domains d ON d.idx = s.domain_idx
    )
    ORDER BY customer_id
    """,
    # A customer's rank within their region; ranks grow with signup day, so "the customers who had
    # signed up by day d" are exactly ranks 1..available(d), found with one ASOF join below.
    """
    CREATE TEMP TABLE customer_rank AS
    SELECT customer_id, region_id, segment, signup_date,
           row_number() OVER (PARTITION BY region_id ORDER BY customer_id) AS region_rank
    FROM customers
    """,
    """
    CREATE TEMP TABLE customer_available AS
    SELECT region_id, signup_date, max(region_rank) AS available
    FROM customer_rank GROUP BY region_id, signup_date
    """,
    """
    CREATE TEMP TABLE revenue_factor AS
    SELECT c.day, r.region_id, coalesce(product(a.factor), 1.0) AS factor
    FROM calendar c CROSS JOIN src_regions r
    LEFT JOIN src_anomalies a
        ON a.target = 'daily_revenue' AND c.day BETWEEN a.first_day AND a.last_day
        AND (a.region IS NULL OR a.region = r.name)
    GROUP BY c.day, r.region_id
    """,
    # Orders per day and region: base x region share x trend x weekday x yearly x noise x anomaly.
    # The noise is a sum of three uniforms, close enough to a normal with a 6 % deviation.
    f"""
    CREATE TEMP TABLE day_region AS
    SELECT x.*, a.available
    FROM (
        SELECT c.day, c.t, r.region_id,
               CAST(greatest(1, round(
                   {_BASE_ORDERS_PER_DAY} * r.share * pow({_ORDER_GROWTH_PER_YEAR}, c.t / 365.0)
                   * {_ORDER_WEEKDAY_FACTORS}[c.dow] * c.yearly
                   * (1 + 0.12 * (rnd('orders_1', c.t * 10 + r.region_id)
                                  + rnd('orders_2', c.t * 10 + r.region_id)
                                  + rnd('orders_3', c.t * 10 + r.region_id) - 1.5))
                   * f.factor)) AS INTEGER) AS n_orders
        FROM calendar c CROSS JOIN src_regions r
        JOIN revenue_factor f ON f.day = c.day AND f.region_id = r.region_id
    ) AS x
    ASOF JOIN customer_available a ON a.region_id = x.region_id AND x.day >= a.signup_date
    """,
    """
    CREATE TEMP TABLE order_seed AS
    SELECT dr.day, dr.t, dr.region_id, dr.available, g.k,
           CAST((dr.t * 10 + dr.region_id) AS BIGINT) * 100000 + g.k AS seed
    FROM day_region dr, range(dr.n_orders) AS g(k)
    """,
    # Time of day: a lunchtime and an evening peak over a thin round-the-clock floor. The customer
    # is one who had signed up by then, skewed towards early customers, who become the loyal
    # repeat buyers.
    """
    CREATE TEMP TABLE order_plan AS
    SELECT row_number() OVER (ORDER BY s.order_date, s.seed) AS order_id,
           cr.customer_id, cr.segment, s.*
    FROM (
        SELECT o.day, o.t, o.region_id, o.seed,
               CAST(o.day AS TIMESTAMP) + to_seconds(CAST(
                   ((CAST(floor(CASE
                        WHEN rnd('peak', o.seed) < 0.06 THEN 86400 * rnd('tod_1', o.seed)
                        ELSE CASE WHEN rnd('peak', o.seed) < 0.48 THEN 45000 ELSE 72000 END
                             + 8000 * sqrt(3) * (rnd('tod_1', o.seed) + rnd('tod_2', o.seed)
                                                 + rnd('tod_3', o.seed) + rnd('tod_4', o.seed) - 2)
                   END) AS BIGINT) % 86400) + 86400) % 86400 AS BIGINT)) AS order_date,
               1 + CAST(floor(o.available * pow(rnd('customer', o.seed), 1.4)) AS INTEGER) AS region_rank,
               CASE WHEN rnd('status', o.seed) < 0.04 THEN 'refunded'
                    WHEN rnd('status', o.seed) < 0.075 THEN 'cancelled'
                    ELSE 'completed' END AS status,
               -- Mobile grows from 25 % to 40 % of orders over the two years.
               CASE WHEN rnd('channel', o.seed) < 0.09 THEN 'partner'
                    WHEN rnd('channel', o.seed) < 0.34 + 0.15 * o.t / 729.0 THEN 'mobile'
                    ELSE 'web' END AS channel,
               CASE WHEN rnd('lines', o.seed) < 0.38 THEN 1
                    WHEN rnd('lines', o.seed) < 0.68 THEN 2
                    WHEN rnd('lines', o.seed) < 0.86 THEN 3
                    WHEN rnd('lines', o.seed) < 0.95 THEN 4
                    ELSE 5 END AS n_lines
        FROM order_seed o
    ) AS s
    JOIN customer_rank cr ON cr.region_id = s.region_id AND cr.region_rank = s.region_rank
    """,
    # The first line's product follows popularity; the others are spread around the catalogue with
    # a stride whose first multiples never wrap onto the first pick, so no order repeats a product.
    f"""
    CREATE TEMP TABLE item_plan AS
    SELECT row_number() OVER (ORDER BY i.order_id, i.line) AS order_item_id,
           i.order_id, p.product_id, i.quantity,
           CAST(CASE WHEN i.day < DATE '2026-01-01' THEN round(p.price / 1.05, 2) ELSE p.price END
                AS DECIMAL(12, 2)) AS unit_price,
           i.discount
    FROM (
        SELECT o.order_id, o.day, g.line,
               CAST(floor({_N_PRODUCTS} * pow(rnd('product', o.seed), 2.2)) + g.line * 37 AS INTEGER)
                   % {_N_PRODUCTS} AS pick,
               CASE o.segment
                   WHEN 'Enterprise' THEN 1 + CAST(floor(5 * pow(rnd('quantity', o.seed * 8 + g.line), 2))
                                                   AS INTEGER)
                   WHEN 'SMB' THEN 1 + CAST(floor(3 * pow(rnd('quantity', o.seed * 8 + g.line), 2))
                                            AS INTEGER)
                   ELSE 1 + CAST(floor(2 * pow(rnd('quantity', o.seed * 8 + g.line), 3)) AS INTEGER)
               END AS quantity,
               CAST(CASE
                   WHEN o.segment = 'Enterprise' AND rnd('contract', o.seed) < 0.6 THEN 0.15
                   WHEN rnd('discount', o.seed * 8 + g.line) < 0.72 THEN 0
                   ELSE [0.05, 0.10, 0.15, 0.20, 0.25][
                       1 + CAST(floor(5 * rnd('discount_size', o.seed * 8 + g.line)) AS INTEGER)]
               END AS DECIMAL(4, 2)) AS discount
        FROM order_plan o, range(o.n_lines) AS g(line)
    ) AS i
    JOIN product_pick p ON p.pick = i.pick
    """,
    """
    CREATE TEMP TABLE order_totals AS
    SELECT order_id,
           CAST(sum(round(quantity * unit_price * (1 - discount), 2)) AS DECIMAL(12, 2)) AS total_amount,
           CAST(sum(quantity) AS INTEGER) AS units
    FROM item_plan GROUP BY order_id
    """,
    """
    INSERT INTO orders
    SELECT o.order_id, o.customer_id, o.order_date, o.status, o.channel, o.region_id, t.total_amount
    FROM order_plan o JOIN order_totals t USING (order_id)
    ORDER BY o.order_id
    """,
    """
    INSERT INTO order_items
    SELECT order_item_id, order_id, product_id, quantity, unit_price, discount
    FROM item_plan ORDER BY order_item_id
    """,
    """
    INSERT INTO daily_revenue
    SELECT dr.day, dr.region_id,
           coalesce(sum(o.total_amount) FILTER (WHERE o.status = 'completed'), 0),
           count(o.order_id) FILTER (WHERE o.status = 'completed'),
           coalesce(sum(t.units) FILTER (WHERE o.status = 'completed'), 0),
           CAST(round(sum(o.total_amount) FILTER (WHERE o.status = 'completed')
                      / nullif(count(o.order_id) FILTER (WHERE o.status = 'completed'), 0), 2)
                AS DECIMAL(12, 2)),
           coalesce(sum(o.total_amount) FILTER (WHERE o.status = 'refunded'), 0),
           count(o.order_id) FILTER (WHERE o.order_id = f.first_order_id)
    FROM day_region dr
    LEFT JOIN orders o ON CAST(o.order_date AS DATE) = dr.day AND o.region_id = dr.region_id
    LEFT JOIN order_totals t ON t.order_id = o.order_id
    LEFT JOIN (SELECT customer_id, min(order_id) AS first_order_id FROM orders GROUP BY customer_id) f
        ON f.customer_id = o.customer_id
    GROUP BY dr.day, dr.region_id
    ORDER BY dr.day, dr.region_id
    """,
    f"""
    INSERT INTO daily_traffic
    SELECT day, channel, visits,
           CAST(round(visits * (0.70 + 0.1 * rnd('unique', seed))) AS INTEGER),
           CAST(round(visits * signup_rate * (0.85 + 0.3 * rnd('signups', seed))) AS INTEGER),
           CAST(round(bounce_rate * (0.92 + 0.16 * rnd('bounce', seed)), 4) AS DECIMAL(5, 4)),
           CAST(round(session_seconds * (0.9 + 0.2 * rnd('session', seed))) AS INTEGER),
           -- Paid search is paid per click; social has a fixed daily budget, whatever goes viral.
           CAST(CASE channel
                    WHEN 'paid_search' THEN round(visits * cpc * (0.95 + 0.1 * rnd('cpc', seed)), 2)
                    WHEN 'social' THEN round(180 * pow({_TRAFFIC_GROWTH_PER_YEAR}, t / 365.0)
                                             * (0.9 + 0.2 * rnd('budget', seed)), 2)
                    ELSE 0 END AS DECIMAL(12, 2))
    FROM (
        SELECT c.day, c.t, ch.*, c.t * 100 + ch.rank AS seed,
               CAST(round(
                   {_BASE_VISITS_PER_DAY} * ch.share * pow({_TRAFFIC_GROWTH_PER_YEAR}, c.t / 365.0)
                   * {_TRAFFIC_WEEKDAY_FACTORS}[c.dow] * c.yearly
                   * (1 + 0.12 * (rnd('visits_1', c.t * 100 + ch.rank) + rnd('visits_2', c.t * 100 + ch.rank)
                                  + rnd('visits_3', c.t * 100 + ch.rank) - 1.5))
                   * coalesce((SELECT product(a.factor) FROM src_anomalies a
                               WHERE a.target = 'daily_traffic' AND c.day BETWEEN a.first_day AND a.last_day
                                 AND (a.channel IS NULL OR a.channel = ch.channel)), 1.0)
               ) AS INTEGER) AS visits
        FROM calendar c
        CROSS JOIN (SELECT *, row_number() OVER (ORDER BY channel) AS rank FROM src_channels) AS ch
    )
    ORDER BY day, channel
    """,
)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _comment_statements() -> list[str]:
    statements = []
    for table, (table_comment, columns) in DEMO_COMMENTS.items():
        statements.append(f"COMMENT ON TABLE {table} IS {_quote(table_comment)}")
        statements.extend(
            f"COMMENT ON COLUMN {table}.{column} IS {_quote(comment)}" for column, comment in columns.items()
        )
    return statements


def _fingerprint() -> str:
    # Everything that shapes the data, plus DuckDB's version because hash() values may change
    # between releases: any change gives a new version, so a stale warehouse is rebuilt without
    # anyone having to remember to bump a number.
    material = repr(
        (
            _SCHEMA_SQL,
            _STAGING_SQL,
            _GENERATION_STEPS,
            _REGIONS,
            _CATEGORIES,
            _TRAFFIC_CHANNELS,
            _FIRST_NAMES,
            _LAST_NAMES,
            _EMAIL_DOMAINS,
            DEMO_ANOMALIES,
            DEMO_COMMENTS,
            duckdb.__version__,
        )
    )
    return "demo-warehouse-" + hashlib.sha256(material.encode()).hexdigest()[:16]


DEMO_WAREHOUSE_VERSION = _fingerprint()


def _cumulative(shares: Iterable[float]) -> list[tuple[float, float]]:
    """[0.4, 0.6] -> [(0, 0.4), (0.4, 1.0)]: ranges a uniform draw falls into with those odds."""
    ranges, low = [], 0.0
    shares = list(shares)
    total = sum(shares)
    for index, share in enumerate(shares):
        high = 1.0 if index == len(shares) - 1 else low + share / total
        ranges.append((low, high))
        low = high
    return ranges


def _load_staging(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_STAGING_SQL)
    region_ranges = _cumulative(share for _, _, _, share, _ in _REGIONS)
    con.executemany(
        "INSERT INTO src_regions VALUES (?, ?, ?, ?, ?, ?)",
        [
            (region_id, name, code, share, low, high)
            for (region_id, name, code, share, _), (low, high) in zip(_REGIONS, region_ranges, strict=True)
        ],
    )
    countries = []
    for region_id, _, _, _, region_countries in _REGIONS:
        ranges = _cumulative(share for _, share in region_countries)
        countries.extend(
            (region_id, country, low, high)
            for (country, _), (low, high) in zip(region_countries, ranges, strict=True)
        )
    con.executemany("INSERT INTO src_countries VALUES (?, ?, ?, ?)", countries)
    categories, products = [], []
    for category_id, (name, code, description, margin, nouns, variants) in enumerate(_CATEGORIES, start=1):
        categories.append((category_id, name, code, description, margin))
        for noun_idx, (noun, base_price) in enumerate(nouns):
            for variant_idx, (variant, multiplier) in enumerate(variants):
                products.append((category_id, noun_idx, noun, base_price, variant_idx, variant, multiplier))
    con.executemany("INSERT INTO src_categories VALUES (?, ?, ?, ?, ?)", categories)
    con.executemany("INSERT INTO src_products VALUES (?, ?, ?, ?, ?, ?, ?)", products)
    con.executemany("INSERT INTO src_channels VALUES (?, ?, ?, ?, ?, ?)", list(_TRAFFIC_CHANNELS))
    for table, values in (
        ("src_first_names", _FIRST_NAMES),
        ("src_last_names", _LAST_NAMES),
        ("src_domains", _EMAIL_DOMAINS),
    ):
        con.executemany(f"INSERT INTO {table} VALUES (?, ?)", list(enumerate(values)))
    known_regions = {name for _, name, _, _, _ in _REGIONS}
    known_channels = {channel for channel, *_ in _TRAFFIC_CHANNELS}
    for anomaly in DEMO_ANOMALIES:
        # A typo here would silently inject nothing, and an alert benchmark would then fail for
        # the wrong reason.
        if anomaly.region is not None and anomaly.region not in known_regions:
            raise ValueError(f"Anomaly {anomaly.name} names an unknown region {anomaly.region!r}.")
        if anomaly.channel is not None and anomaly.channel not in known_channels:
            raise ValueError(f"Anomaly {anomaly.name} names an unknown channel {anomaly.channel!r}.")
    con.executemany(
        "INSERT INTO src_anomalies VALUES (?, ?, ?, ?, ?, ?)",
        [(a.table, a.first_day, a.last_day, a.factor, a.region, a.channel) for a in DEMO_ANOMALIES],
    )


def _generate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_SCHEMA_SQL)
    _load_staging(con)
    for step in _GENERATION_STEPS:
        con.execute(step)
    for statement in _comment_statements():
        con.execute(statement)
    con.execute("CHECKPOINT")


# Public API ----------------------------------------------------------------------------------


def demo_warehouse_default_path() -> Path:
    return Path(settings.CONNECTIONS_FILE_ROOT) / DEMO_WAREHOUSE_FILENAME


def _version_path(path: Path) -> Path:
    # The version lives in a hidden sidecar file rather than in the warehouse: DuckDB cannot
    # comment a schema or a database, a table or column comment is what the LLM catalogue reads
    # (a version string there would end up in prompts), and a table of our own would show up in
    # the catalogue and in "which tables are there?" answers. The sidecar is written only after
    # the warehouse is in place, so a crash in between leaves a missing or older version, and the
    # next run rebuilds: it errs towards rebuilding, never towards trusting a partial state.
    return path.with_name(f".{path.name}.version")


def demo_warehouse_is_current(*, path: Path | None = None) -> bool:
    """Whether the warehouse at `path` exists and was built by this version of the generator."""
    target = path if path is not None else demo_warehouse_default_path()
    version_file = _version_path(target)
    if not target.is_file() or not version_file.is_file():
        return False
    return version_file.read_text().strip() == DEMO_WAREHOUSE_VERSION


def demo_warehouse_build(*, path: Path | None = None, force: bool = False) -> Path:
    """Build the demo warehouse at `path` (default: in CONNECTIONS_FILE_ROOT) and return its path.

    Does nothing when a warehouse of the current version is already there, unless `force`. The
    database is written to a temporary file in the same folder and renamed into place, so readers
    see either the old warehouse or the new one, and a crash leaves no half-built file behind.
    """
    target = path if path is not None else demo_warehouse_default_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    if not force and demo_warehouse_is_current(path=target):
        logger.info("demo_warehouse.current", path=str(target), version=DEMO_WAREHOUSE_VERSION)
        return target

    started = time.monotonic()
    # Unique per build, so two concurrent builds never write into the same temporary file.
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.building")
    try:
        with duckdb.connect(str(temporary)) as con:
            _generate(con)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
        temporary.with_name(temporary.name + ".wal").unlink(missing_ok=True)

    version_file = _version_path(target)
    version_temporary = version_file.with_name(f"{version_file.name}.{uuid.uuid4().hex}")
    version_temporary.write_text(DEMO_WAREHOUSE_VERSION + "\n")
    os.replace(version_temporary, version_file)
    logger.info(
        "demo_warehouse.built",
        path=str(target),
        version=DEMO_WAREHOUSE_VERSION,
        seconds=round(time.monotonic() - started, 2),
    )
    return target


def demo_warehouse_row_counts(*, path: Path | None = None) -> dict[str, int]:
    """Rows per table of the warehouse at `path`, opened read-only."""
    target = path if path is not None else demo_warehouse_default_path()
    with duckdb.connect(str(target), read_only=True) as con:
        return {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in DEMO_TABLES}


DEMO_CONNECTION_NAME = "Demo warehouse"


def demo_connection_ensure(*, org: Organization, actor: User | None = None) -> Connection:
    """Build the demo warehouse if needed, connect it to `org` and read its catalogue. Rerunnable."""
    from apps.connections.services.catalogue import catalogue_refresh

    path = demo_warehouse_build()
    connection, _ = Connection.objects.get_or_create(
        org=org,
        name=DEMO_CONNECTION_NAME,
        defaults={"engine": Engine.DUCKDB, "database": path.name, "created_by": actor},
    )
    if connection.catalogue_version == 0 or connection.catalogue_status != CatalogueStatus.READY:
        connection = catalogue_refresh(connection_id=connection.pk)
    return connection
