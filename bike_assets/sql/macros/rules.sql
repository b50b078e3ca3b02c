{#-
  The business rules of the data contract (docs/tables.md), each written once as a SQL
  expression. Models and checks call them; they expand into plain SQL before it runs, so the
  same text translates to other engines (sqlglot).
-#}

{# stg_customers: the forms of an email and a phone that are hashed. #}
{% macro normalized_email(email) -%}
nullif(lower(trim({{ email }})), '')
{%- endmacro %}

{% macro normalized_phone(phone) -%}
nullif(regexp_replace({{ phone }}, '[^0-9]', '', 'g'), '')
{%- endmacro %}

{# stg_customers, Privacy: HMAC-SHA256 (RFC 2104) as hex, with the pads of BIKE_PII_KEY that
   the run sets as variables pii_inner_pad and pii_outer_pad; null stays null. #}
{% macro keyed_hash(value) -%}
sha256(getvariable('pii_outer_pad') || unhex(sha256(getvariable('pii_inner_pad') || encode({{ value }}))))
{%- endmacro %}

{# stg_customers: region and gender from the shipped lookups; unknown when they do not say. #}
{% macro census_region(region) -%}
coalesce({{ region }}, 'Unknown')
{%- endmacro %}

{% macro gender(gender) -%}
coalesce({{ gender }}, 'unknown')
{%- endmacro %}

{# orders_enriched: 1 Pending, 2 Processing, 3 Rejected, 4 Completed. #}
{% macro order_status_label(status) -%}
case {{ status }}
    when 1 then 'Pending' when 2 then 'Processing' when 3 then 'Rejected' when 4 then 'Completed'
end
{%- endmacro %}

{# orders_enriched, delivery_status: Pending when not shipped; Unknown when shipped but the
   required date is missing or the order shipped before it was placed; else On Time when
   shipped on or before the required date, Late when after. #}
{% macro delivery_status(order_date, required_date, shipped_date) -%}
case
    when {{ shipped_date }} is null then 'Pending'
    when {{ required_date }} is null or {{ shipped_date }} < {{ order_date }} then 'Unknown'
    when {{ shipped_date }} <= {{ required_date }} then 'On Time'
    else 'Late'
end
{%- endmacro %}

{# orders_enriched, days_to_ship: shipped_date - order_date in days; null when not shipped or
   negative (shipped before placed). #}
{% macro days_to_ship(order_date, shipped_date) -%}
case when {{ shipped_date }} >= {{ order_date }} then date_diff('day', {{ order_date }}, {{ shipped_date }}) end
{%- endmacro %}

{# Whole days from one date to a later one (null when either is null). #}
{% macro days_between(earlier, later) -%}
date_diff('day', {{ earlier }}, {{ later }})
{%- endmacro %}

{# orders_enriched: the order lines that count (quantity <= 0: returns, cancelled lines). #}
{% macro counts_toward_order(quantity) -%}
{{ quantity }} > 0
{%- endmacro %}

{# orders_enriched: a line's exact net price, list_price * quantity * (1 - discount), computed in
   DECIMAL(38) so that no intermediate product overflows (the export's reader refuses a line
   whose net price does not fit DECIMAL(18,2)). #}
{% macro line_net_price(list_price, quantity, discount) -%}
cast(cast({{ list_price }} as decimal(38, 2)) * {{ quantity }} * (1 - {{ discount }}) as decimal(38, 8))
{%- endmacro %}

{# Money: a non-negative exact decimal rounded half-up to cents. #}
{% macro cents_half_up(amount) -%}
cast(round({{ amount }}, 2) as decimal(18, 2))
{%- endmacro %}

{# Money: numerator / denominator rounded half-up to 2 decimals, exactly (whole hundredths).
   The numerator has at most 2 decimals and is not negative; the denominator is a positive
   whole number (null when it is null or 0). #}
{% macro divide_half_up(numerator, denominator) -%}
cast(cast((2 * cast({{ numerator }} * 100 as hugeint) + cast(nullif({{ denominator }}, 0) as hugeint)) // (2 * cast(nullif({{ denominator }}, 0) as hugeint)) as decimal(38, 0)) * 0.01 as decimal(18, 2))
{%- endmacro %}

{# customers_enriched, customer_segment: checked in this order; no orders is New. #}
{% macro customer_segment(total_orders, total_spent) -%}
case
    when {{ total_orders }} >= 10 and {{ total_spent }} >= 5000 then 'VIP'
    when {{ total_orders }} >= 5 and {{ total_spent }} >= 2000 then 'Loyal'
    when {{ total_orders }} >= 2 then 'Regular'
    else 'New'
end
{%- endmacro %}

{# customers_enriched, ltv_segment: lifetime-value tier, null without orders; cut-offs >=. #}
{% macro ltv_segment(total_spent) -%}
case
    when {{ total_spent }} is null then null
    when {{ total_spent }} >= 10000 then 'Platinum'
    when {{ total_spent }} >= 5000 then 'Gold'
    when {{ total_spent }} >= 1000 then 'Silver'
    else 'Bronze'
end
{%- endmacro %}

{# customers_enriched, primary store: rank 1 has most orders, then the latest order, then the
   lowest store_id. #}
{% macro primary_store_rank(customer_id, orders_at_store, latest_order_at_store, store_id) -%}
row_number() over (
    partition by {{ customer_id }}
    order by {{ orders_at_store }} desc, {{ latest_order_at_store }} desc, {{ store_id }} asc
)
{%- endmacro %}
