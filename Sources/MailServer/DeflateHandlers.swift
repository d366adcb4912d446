import CompressNIO
import NIOCore

/// COMPRESS=DEFLATE (RFC 4978): raw deflate (RFC 1951) on both directions of the connection, below the protocol
/// handler. Every write is sync-flushed so that each response reaches the client at once.
final class DeflateEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let compressor: ZlibCompressor

    init() throws {
        compressor = try ZlibCompressor(algorithm: .deflate)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var input = unwrapOutboundIn(data)
        var output = context.channel.allocator.buffer(capacity: compressor.maxSize(from: input) + 64)
        do {
            try compressor.deflate(from: &input, to: &output, flush: .sync)
            context.write(wrapOutboundOut(output), promise: promise)
        } catch {
            promise?.fail(error)
            context.fireErrorCaught(error)
        }
    }
}

/// The inflating half. A "zip bomb" is refused: one read may expand to at most `maxExpansion` octets.
final class DeflateDecoder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    static let maxExpansion = 16 << 20
    private let decompressor: ZlibDecompressor

    init() throws {
        decompressor = try ZlibDecompressor(algorithm: .deflate)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var input = unwrapInboundIn(data)
        do {
            for chunk in try inflate(&input, allocator: context.channel.allocator) {
                context.fireChannelRead(wrapInboundOut(chunk))
            }
        } catch {
            context.fireErrorCaught(error)
            context.close(promise: nil)
        }
    }

    /// Inflates everything readable in `input` (also used for bytes that arrived before the handler was added).
    func inflate(_ input: inout ByteBuffer, allocator: ByteBufferAllocator) throws -> [ByteBuffer] {
        var chunks: [ByteBuffer] = []
        var total = 0
        while input.readableBytes > 0 {
            var out = allocator.buffer(capacity: 65536)
            do {
                try decompressor.inflate(from: &input, to: &out)
            } catch let e as CompressNIOError where e == .bufferOverflow {
                // More output than the buffer holds: keep going with a fresh one.
            } catch let e as CompressNIOError where e == .inputBufferOverflow {
                if out.readableBytes > 0 { chunks.append(out) }
                break
            }
            total += out.readableBytes
            guard total <= Self.maxExpansion else { throw CompressNIOError.bufferOverflow }
            if out.readableBytes > 0 { chunks.append(out) } else if input.readableBytes > 0 && out.writableBytes > 0 { break }
        }
        return chunks
    }
}
