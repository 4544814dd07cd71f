"""Holiday calendars (节假日安排) as data: one TOML file per region and year.

``cn-YYYY.toml`` holds China's public holidays and adjusted working days (调休) of year
YYYY, copied from the General Office of the State Council's notice on that year's
holiday arrangements (国务院办公厅关于YYYY年部分节假日安排的通知). Load them with
:func:`prepaid.calendar.load_calendar`.
"""
