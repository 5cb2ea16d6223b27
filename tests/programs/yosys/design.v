// A small synchronous design for tests/programs/test_yosys_wasi.py: an ALU whose result
// is registered, and a counter with a synchronous reset and a terminal-count flag.
module top (
    input  wire       clk,
    input  wire       rst,
    input  wire [3:0] a,
    input  wire [3:0] b,
    input  wire [1:0] op,
    output reg  [3:0] y,
    output reg  [7:0] count,
    output wire       done
);
    always @(posedge clk) begin
        case (op)
            2'b00: y <= a + b;
            2'b01: y <= a - b;
            2'b10: y <= a & b;
            2'b11: y <= a ^ b;
        endcase
        if (rst)
            count <= 8'd0;
        else
            count <= count + 8'd1;
    end
    assign done = (count == 8'd200) && (y != 4'd0);
endmodule
