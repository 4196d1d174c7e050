{#-
  `numerator / denominator` rounded half away from zero (21.35 -> 21.4, -21.35 -> -21.4) to
  `scale` decimals, as an exact decimal; null unless the denominator is > 0. Both arguments
  must be whole numbers.

  DuckDB divides decimals in floating point, where 61 * 7 / 20 is 21.3499999… and rounds to
  21.3. So the quotient is found with whole numbers only: q = floor((2·|n|·10^scale + d) / 2d),
  the floor taken by subtracting the remainder (`mod`) first, so the one division left is
  exact in any engine (an exact multiple, well inside a double's 2^53). Then q · 10^-scale.
-#}
{% macro round_half_up_ratio(numerator, denominator, scale) -%}
    {%- set doubled -%}(2 * {{ denominator }}){%- endset -%}
    {%- set shifted -%}(2 * abs({{ numerator }}) * {{ 10 ** scale }} + {{ denominator }}){%- endset -%}
    {%- set unit = '1' if scale == 0 else '0.' ~ '0' * (scale - 1) ~ '1' -%}
    case when {{ denominator }} > 0 then
        {{ whole_sign(numerator) }}
        * cast(({{ shifted }} - mod({{ shifted }}, {{ doubled }})) / {{ doubled }} as decimal(38, 0))
        * cast({{ unit }} as decimal(38, {{ scale }}))
    end
{%- endmacro %}
