"""Online Retail invoice lines -> recostore JSON lines, with polars: the shape of a batch
pipeline that feeds `recostore build` (README, "Replicas"). Spark or DataFusion would do the
same group-bys; what matters is the line formats of FORMAT.md.

    python retail_to_jsonl.py ../shared/data/online-retail/online-retail.csv.gz out/
    recostore build --items out/items.jsonl --events out/events.jsonl --out file:///srv/recs

Items: one per stock code, tagged with the words of its description (`word:<w>`) and a price
band (`price:<band>`). Events: one purchase per invoice line with a customer, the invoice as
its session. Cancellations (invoices starting with C), returns and lines without a customer
or price are left out.
"""

import json
import sys

import polars as pl


def main(src: str, out: str) -> None:
    import os

    os.makedirs(out, exist_ok=True)
    lines = pl.read_csv(
        src,
        schema_overrides={"InvoiceNo": pl.Utf8, "StockCode": pl.Utf8, "CustomerID": pl.Float64},
        encoding="utf8-lossy",
    ).filter(
        (pl.col("Quantity") > 0)
        & (pl.col("UnitPrice") > 0)
        & pl.col("CustomerID").is_not_null()
        & ~pl.col("InvoiceNo").str.starts_with("C")
    )
    lines = lines.with_columns(
        pl.col("InvoiceDate").str.to_datetime("%Y-%m-%d %H:%M:%S").dt.epoch("s").alias("ts"),
        pl.col("CustomerID").cast(pl.Int64).cast(pl.Utf8).alias("user"),
    )

    items = (
        lines.group_by("StockCode")
        .agg(
            pl.col("Description").drop_nulls().first().alias("title"),
            pl.col("UnitPrice").median().alias("price"),
        )
        .with_columns(
            pl.col("title")
            .fill_null("")
            .str.to_lowercase()
            .str.extract_all(r"[a-z]{3,}")
            .list.unique()
            .list.sort()
            .alias("words"),
            pl.when(pl.col("price") < 1)
            .then(pl.lit("under-1"))
            .when(pl.col("price") < 5)
            .then(pl.lit("1-5"))
            .when(pl.col("price") < 20)
            .then(pl.lit("5-20"))
            .otherwise(pl.lit("20-up"))
            .alias("band"),
        )
        .sort("StockCode")
    )
    with open(os.path.join(out, "items.jsonl"), "w") as f:
        for row in items.iter_rows(named=True):
            tags = {f"word:{w}": 1.0 for w in row["words"]}
            tags[f"price:{row['band']}"] = 0.5
            line = {"id": row["StockCode"], "tags": tags, "price": round(row["price"], 2)}
            if row["title"]:
                line["title"] = row["title"]
            f.write(json.dumps(line) + "\n")

    with open(os.path.join(out, "events.jsonl"), "w") as f:
        for row in lines.sort("ts").iter_rows(named=True):
            f.write(
                json.dumps(
                    {
                        "user": row["user"],
                        "item": row["StockCode"],
                        "kind": "purchase",
                        "ts": row["ts"],
                        "session": row["InvoiceNo"],
                        "qty": row["Quantity"],
                        "price": row["UnitPrice"],
                    }
                )
                + "\n"
            )
    print(f"{items.height} items, {lines.height} purchase lines written to {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
